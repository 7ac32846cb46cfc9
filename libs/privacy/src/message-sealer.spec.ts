import { randomBytes } from 'node:crypto';
import type { AppConfig } from '@hemato/common';
import { MessageSealer } from './message-sealer';

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
