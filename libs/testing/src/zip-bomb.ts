import { Zip, ZipDeflate } from 'fflate';

/**
 * A zip of one .png entry, a PNG signature and `bytes` zeros, deflated (about a thousandth of `bytes`), made as a
 * stream: what a zip bomb looks like to the intake checks (IMAGE_ZIP_MAX_UNPACKED_BYTES).
 */
export function zipBomb(bytes: number): Buffer {
  const parts: Uint8Array[] = [];
  const zip = new Zip((err, data) => {
    if (err) throw err;
    parts.push(data);
  });
  const entry = new ZipDeflate('slide.png', { level: 9 });
  zip.add(entry);
  const zeros = new Uint8Array(16 * 1024 * 1024);
  const first = new Uint8Array(zeros.length);
  first.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  for (let n = 0; n < bytes; n += zeros.length) entry.push(n === 0 ? first : zeros, n + zeros.length >= bytes);
  zip.end();
  return Buffer.concat(parts);
}
