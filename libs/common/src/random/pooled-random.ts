import { randomFillSync } from 'node:crypto';

/**
 * Cryptographically random bytes drawn from a pool refilled 4 KiB at a time — what Node does for
 * `randomUUID()`. Each `crypto.randomBytes()` call is a trip to the kernel's CSPRNG: ~5 µs on these
 * VMs, and HL7 intake needs three per message (proxy id, AES-GCM IV, ACK control id), a tenth of its
 * per-message CPU in `bench:mllp`. The bytes are the same CSPRNG output, only fetched in bulk; each
 * call gets its own copy, never bytes handed out before.
 */
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

export function pooledRandomBytes(size: number): Buffer {
  if (size > POOL_SIZE / 4) return randomFillSync(Buffer.allocUnsafe(size));
  if (offset + size > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.from(pool.subarray(offset, offset + size));
  // Consumed bytes are overwritten so the pool never holds a copy of what it handed out.
  pool.fill(0, offset, offset + size);
  offset += size;
  return out;
}
