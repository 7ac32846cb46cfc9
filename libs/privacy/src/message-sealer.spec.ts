import { randomBytes } from 'node:crypto';
import type { AppConfig } from '@hemato/common';
import { MessageSealer, openMessage, sealMessage, sealedKeyId } from './message-sealer';
import { phiCipherFromConfig } from './patient-proxy.service';

const security = (key = randomBytes(32)) =>
  ({ security: { PHI_ENCRYPTION_KEY: key.toString('base64'), PHI_KEY_ID: 'k1' } }) as unknown as Pick<
    AppConfig,
    'security'
  >;

describe('MessageSealer', () => {
  const msg = 'MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ORM^O01|1|P|2.3\rPID|1||MRN1^^^GENHOSP^MR||MÜLLER^JOSÉ';

  it('seals a message so none of it is readable, and opens it again byte for byte', () => {
    const sealer = new MessageSealer(security());
    const sealed = sealer.seal(msg);
    expect(sealed).toMatch(/^enc:k1\./);
    expect(sealed).not.toMatch(/MRN1|MÜLLER|PID/);
    expect(sealer.open(sealed)).toBe(msg);
    expect(sealer.seal(msg)).not.toBe(sealed); // a fresh IV each time
  });

  it('reads a value stored before sealing as it is, and refuses one sealed with another key', () => {
    const sealer = new MessageSealer(security());
    expect(sealer.open(msg)).toBe(msg);
    expect(sealer.open('{"resourceType":"ServiceRequest"}')).toBe('{"resourceType":"ServiceRequest"}');
    expect(sealer.openNullable(null)).toBeNull();
    const other = new MessageSealer(security());
    expect(() => other.open(sealer.seal(msg))).toThrow();
  });
});

describe('phiCipherFromConfig', () => {
  const base = (previous: string[]) => ({
    PHI_KEY_ID: 'k2',
    PHI_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    PHI_PREVIOUS_KEYS: previous,
  });

  it('opens values sealed with a previous key and seals with the current one', () => {
    const old = randomBytes(32);
    const before = new MessageSealer(security(old));
    const sealed = before.seal('MSH|old');
    const cipher = phiCipherFromConfig(base([`k1:${old.toString('base64')}`]));
    expect(openMessage(cipher, sealed)).toBe('MSH|old');
    expect(sealedKeyId(sealMessage(cipher, 'MSH|new'))).toBe('k2');
    expect(sealedKeyId('MSH|plain')).toBeNull();
  });

  it('refuses a previous key under the current key id, or one id twice', () => {
    const key = randomBytes(32).toString('base64');
    expect(() => phiCipherFromConfig(base([`k2:${key}`]))).toThrow(/names the current PHI_KEY_ID/);
    expect(() => phiCipherFromConfig(base([`k1:${key}`, `k1:${key}`]))).toThrow(/twice/);
  });
});
