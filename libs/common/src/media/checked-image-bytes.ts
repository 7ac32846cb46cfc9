import { DEFAULT_ZIP_MAX_UNPACKED_BYTES } from './zip-images-check';

/**
 * Inline image bytes (in memory, as an order carried them) already found to be what Hemato.AI takes: a whole JPEG
 * or PNG, or a zip of them. Intake checks them before its transaction (a zip inflated letting other work run:
 * HL7's checkDeferredZips, FHIR's checkInlineImages), and OrderIntakeService.createMany, which checks what it
 * stores, skips bytes found good here rather than inflate a zip again with the transaction open. One record for
 * every way in. Weak: an entry goes with its bytes. With each, the unpacked limit a zip was checked under: bytes
 * that passed under a larger limit are checked again under a smaller one.
 */
const found = new WeakMap<Uint8Array, number>();

/** Records `bytes` as found good; for a zip, within `maxUnpackedBytes` (IMAGE_ZIP_MAX_UNPACKED_BYTES). */
export function markImageBytesGood(bytes: Uint8Array, maxUnpackedBytes = DEFAULT_ZIP_MAX_UNPACKED_BYTES): void {
  found.set(bytes, Math.min(found.get(bytes) ?? Infinity, maxUnpackedBytes));
}

/** Whether `bytes` were found good, within `maxUnpackedBytes` if a zip: a check of them would find nothing. */
export function imageBytesFoundGood(bytes: Uint8Array, maxUnpackedBytes = DEFAULT_ZIP_MAX_UNPACKED_BYTES): boolean {
  const limit = found.get(bytes);
  return limit !== undefined && limit <= maxUnpackedBytes;
}
