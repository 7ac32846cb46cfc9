import { usableCallbackUrl } from './signed-urls';

describe('usableCallbackUrl', () => {
  const cb = (base: string) => `${base}/hemato/callback/study-1/1795000000/abc`;

  it('hands an https callback to any Hemato.AI, and an http one to a Hemato.AI over plain HTTP (the sandbox)', () => {
    expect(usableCallbackUrl('https://us.api.hemato.ai', cb('https://bridge.hospital.example'))).toBe(
      cb('https://bridge.hospital.example'),
    );
    expect(usableCallbackUrl('http://127.0.0.1:4010', cb('http://127.0.0.1:3000'))).toBe(cb('http://127.0.0.1:3000'));
  });

  it('hands no http callback to a Hemato.AI over TLS (the reference wants HTTPS callbacks): the order is polled', () => {
    expect(usableCallbackUrl('https://us.api.hemato.ai', cb('http://bridge.hospital.example'))).toBeUndefined();
    expect(usableCallbackUrl('https://eu.api.hemato.ai/v1', cb('http://127.0.0.1:3000'))).toBeUndefined();
  });
});
