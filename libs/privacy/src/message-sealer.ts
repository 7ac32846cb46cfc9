import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import type { PhiCipher } from './phi-cipher';
import { phiCipherFromConfig } from './patient-proxy.service';

/** Marks a sealed value. An HL7 message starts with `MSH`, a FHIR body with `{`: neither starts with this. */
export const SEALED_PREFIX = 'enc:';
const SEALED = SEALED_PREFIX;

/** `enc:` + the cipher's sealed form of `text`. */
export function sealMessage(cipher: PhiCipher, text: string): string {
  return SEALED + cipher.encrypt(text);
}

/** The text of a stored value, sealed (`enc:…`) or stored before sealing existed (as it is). */
export function openMessage(cipher: PhiCipher, stored: string): string {
  return stored.startsWith(SEALED) ? cipher.decrypt(stored.slice(SEALED.length)) : stored;
}

/** The key id a stored value is sealed with, or null for a value stored before sealing existed. */
export function sealedKeyId(stored: string): string | null {
  if (!stored.startsWith(SEALED)) return null;
  const end = stored.indexOf('.', SEALED.length);
  return stored.slice(SEALED.length, end < 0 ? undefined : end);
}

/**
 * Inbound messages as received (HL7 text, FHIR request bodies) and the ACKs stored for them carry PHI
 * (PID, Patient resources, ORR^O02's PID): kept sealed with the PHI key (AES-256-GCM, key id for
 * rotation), like the patient identity. Values stored before sealing existed have no prefix and are
 * read as they are.
 */
@Injectable()
export class MessageSealer {
  private readonly cipher: PhiCipher;

  constructor(@Inject(APP_CONFIG) config: Pick<AppConfig, 'security'>) {
    this.cipher = phiCipherFromConfig(config.security);
  }

  seal(text: string): string {
    return sealMessage(this.cipher, text);
  }

  /** The text of a stored value, sealed or not. */
  open(stored: string): string {
    return openMessage(this.cipher, stored);
  }

  /** `open` for a column that may be null. */
  openNullable(stored: string | null | undefined): string | null {
    return stored === null || stored === undefined ? null : this.open(stored);
  }
}
