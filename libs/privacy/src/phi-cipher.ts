import { createCipheriv, createDecipheriv } from 'node:crypto';
import { pooledRandomBytes } from '@hemato/common';

/**
 * AES-256-GCM for PHI at rest. Ciphertext is `keyId.iv.tag.data` (base64url parts): the key id lets
 * old rows be read after a rotation, as long as the old key is still configured.
 */
export class PhiCipher {
  private readonly keys: Map<string, Buffer>;

  /** @param current key id and key (32 bytes) used to encrypt; `older` keys are only used to decrypt. */
  constructor(
    private readonly current: { id: string; key: Buffer },
    older: Array<{ id: string; key: Buffer }> = [],
  ) {
    if (current.key.length !== 32) throw new Error('PHI encryption key must be 32 bytes');
    if (current.id.includes('.')) throw new Error('PHI key id must not contain "."');
    this.keys = new Map([...older, current].map((k) => [k.id, k.key]));
  }

  get keyId(): string {
    return this.current.id;
  }

  /** Whether a value sealed with this key id can be opened (the current key or a previous one). */
  knows(keyId: string): boolean {
    return this.keys.has(keyId);
  }

  encrypt(plain: string): string {
    const iv = pooledRandomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [this.current.id, iv, cipher.getAuthTag(), data]
      .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
      .join('.');
  }

  decrypt(sealed: string): string {
    const [id, iv, tag, data] = sealed.split('.');
    const key = id === undefined ? undefined : this.keys.get(id);
    if (!key || !iv || !tag || data === undefined)
      throw new Error(`Cannot decrypt PHI: unknown key id or malformed value`);
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
  }
}
