import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import type { PhiCipher } from './phi-cipher';
import { phiCipherFromConfig } from './patient-proxy.service';

/** Marks a sealed value. An HL7 message starts with `MSH`, a FHIR body with `{`: neither starts with this. */
const SEALED = 'enc:';

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
    return SEALED + this.cipher.encrypt(text);
  }

  /** The text of a stored value, sealed or not. */
  open(stored: string): string {
    return stored.startsWith(SEALED) ? this.cipher.decrypt(stored.slice(SEALED.length)) : stored;
  }

  /** `open` for a column that may be null. */
  openNullable(stored: string | null | undefined): string | null {
    return stored === null || stored === undefined ? null : this.open(stored);
  }
}
