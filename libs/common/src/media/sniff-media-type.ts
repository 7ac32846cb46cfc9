/**
 * The image types Hemato.AI takes, told by their first bytes (never by a sender's label): used wherever
 * image bytes enter (uploads, URL fetches, OBX ED in HL7 orders).
 */

/** Image media type from the first bytes: JPEG, PNG or zip; anything else is null. */
export function sniffMediaType(head: Buffer): 'image/jpeg' | 'image/png' | 'application/zip' | null {
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'image/jpeg';
  if (head.length >= 8 && head.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return 'image/png';
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04)
    return 'application/zip';
  return null;
}
