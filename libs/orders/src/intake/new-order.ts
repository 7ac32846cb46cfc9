import type { DeclaredContent, SourceChannel } from '@hemato/common';
import type { PatientIdentity } from '@hemato/privacy';

/** An image that came with the order. */
export type ImageSourceInput =
  /** Bytes carried in the message (HL7 OBX ED, FHIR attachment data). */
  | { kind: 'inline'; name: string; data: Buffer; mediaType?: string | null }
  /**
   * A URL to fetch (HL7 OBX RP, FHIR attachment url); fetched by the worker under the allow-list, and checked
   * against what the order declared its bytes to be (FHIR Attachment.size, and .hash as hex SHA-1), if it did.
   */
  | { kind: 'url'; name: string; url: string; mediaType?: string | null; declared?: DeclaredContent };

/** One order as a channel understood it, before it is stored. */
export interface NewOrderInput {
  sourceChannel: SourceChannel;
  /** Which client of the channel placed it; a FHIR client sees only the orders it placed. */
  sourceClient?: string | null;
  placerOrderNumber: string | null;
  /** Channel idempotency key (e.g. `fhir:<system>|<value>`): a second order with it is refused by the database. */
  externalKey?: string | null;
  patient: PatientIdentity;
  test: { system: string | null; code: string; display?: string | null };
  tasks: string[];
  /** Not patient identity: ordering provider, collection time, specimen, diagnoses, notes, FHIR refs. */
  details?: Record<string, unknown>;
  inboundMessageId?: string | null;
  images?: ImageSourceInput[];
  /** Images expected by upload or drop folder; the order moves on when this many arrived. */
  expectedImageCount?: number | null;
  /** Who created it, for the timeline: `hl7`, `fhir`, ... */
  actor: string;
}
