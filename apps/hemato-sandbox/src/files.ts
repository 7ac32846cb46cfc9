import { createHash } from 'node:crypto';
import { unzipSync } from 'fflate';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import type { HematoFileType } from '@hemato/hemato-client';
import { analysePixels, type ImageAnalysis } from './analysis';

/** A 400 with a message saying what is wrong with the file. */
export class FileProblem extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const ALIASES: Record<string, HematoFileType> = {
  'image/jpeg': 'image/jpeg',
  'image/jpg': 'image/jpeg',
  'image/pjpeg': 'image/jpeg',
  'image/png': 'image/png',
  'application/zip': 'application/zip',
  'application/x-zip-compressed': 'application/zip',
  'application/x-zip': 'application/zip',
};

/** Content types that say nothing about the file (curl's default for --data-binary, generic binary). */
const UNSPECIFIC = new Set([
  'application/x-www-form-urlencoded',
  'application/octet-stream',
  'binary/octet-stream',
  '',
]);

const EXTENSIONS: Record<string, HematoFileType> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  zip: 'application/zip',
};

/** Which way the file type was found, for the request log and debug_info. */
export type TypeSource = 'content-type' | 'content_type' | 'file_name';

/**
 * The file type of an upload: the Content-Type header, else the `content_type` query parameter, else the
 * extension of `file_name`. A specific but unsupported type is an error; an unspecific one (curl's default
 * form type, octet-stream) lets the next source decide.
 */
export function fileTypeOf(
  contentTypeHeader: string | undefined,
  contentTypeQuery: string | null,
  fileName: string | null,
): { type: HematoFileType; source: TypeSource } {
  const header = (contentTypeHeader ?? '').split(';')[0].trim().toLowerCase();
  if (header.startsWith('multipart/')) {
    throw new FileProblem('multipart uploads are not accepted: the whole request body must be the file itself');
  }
  if (!UNSPECIFIC.has(header)) {
    const type = ALIASES[header];
    if (!type)
      throw new FileProblem(`unsupported Content-Type ${header}: send image/jpeg, image/png or application/zip`);
    return { type, source: 'content-type' };
  }
  const query = (contentTypeQuery ?? '').split(';')[0].trim().toLowerCase();
  if (query && !UNSPECIFIC.has(query)) {
    const type = ALIASES[query];
    if (!type) throw new FileProblem(`unsupported content_type ${query}: use image/jpeg, image/png or application/zip`);
    return { type, source: 'content_type' };
  }
  if (fileName) {
    const ext = /\.([A-Za-z0-9]+)$/.exec(fileName)?.[1]?.toLowerCase();
    const type = ext ? EXTENSIONS[ext] : undefined;
    if (!type) {
      throw new FileProblem(
        `cannot tell the file type from file_name ${JSON.stringify(fileName)}: use a .jpg, .jpeg, .png or .zip name, or a Content-Type header`,
      );
    }
    return { type, source: 'file_name' };
  }
  throw new FileProblem(
    'cannot determine the file type: send a Content-Type header (image/jpeg, image/png, application/zip), or a content_type or file_name query parameter',
  );
}

/** The reference's file id: `sha224-i-` + hex SHA-224 of the bytes. */
export function fileIdOf(bytes: Uint8Array): string {
  return `sha224-i-${createHash('sha224').update(bytes).digest('hex')}`;
}

function sniff(bytes: Uint8Array): HematoFileType | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47)
    return 'image/png';
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5))
    return 'application/zip';
  return undefined;
}

const NAMES: Record<HematoFileType, string> = { 'image/jpeg': 'JPEG', 'image/png': 'PNG', 'application/zip': 'zip' };

function decodeImage(bytes: Uint8Array, type: 'image/jpeg' | 'image/png', what: string): ImageAnalysis {
  try {
    if (type === 'image/jpeg') {
      const img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: false, // RGB: a quarter less memory to fill for the same analysis
        maxMemoryUsageInMB: 2048,
        maxResolutionInMP: 400,
      });
      if (!img.width || !img.height) throw new Error('no image data');
      return analysePixels(img.data, img.width, img.height, 3);
    }
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return analysePixels(png.data, png.width, png.height, 4);
  } catch (err) {
    throw new FileProblem(
      `${what} is not a valid ${NAMES[type]} image: ${(err as Error).message || 'cannot be decoded'}`,
    );
  }
}

/**
 * Checks a file by decoding it and analyses its images. JPEG and PNG are decoded; a zip must hold
 * only JPEG and PNG files (folders allowed), each decoded too. Throws {@link FileProblem} saying what is wrong.
 */
export function checkAndAnalyse(bytes: Uint8Array, declared: HematoFileType): ImageAnalysis[] {
  if (bytes.length === 0) throw new FileProblem('the request body is empty: the body must be the file itself');
  const actual = sniff(bytes);
  if (actual !== declared) {
    throw new FileProblem(
      actual
        ? `the file was declared ${declared} but its bytes are a ${NAMES[actual]} file`
        : `the file was declared ${declared} but its bytes are not a ${NAMES[declared]} file (wrong signature)`,
    );
  }
  if (declared !== 'application/zip') return [decodeImage(bytes, declared, 'the file')];

  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (err) {
    throw new FileProblem(`the zip cannot be read: ${(err as Error).message}`);
  }
  const out: ImageAnalysis[] = [];
  const names = Object.keys(entries).sort();
  for (const name of names) {
    if (name.endsWith('/')) continue;
    const data = entries[name];
    const kind = sniff(data);
    const ext = /\.([A-Za-z0-9]+)$/.exec(name)?.[1]?.toLowerCase();
    if (kind !== 'image/jpeg' && kind !== 'image/png') {
      throw new FileProblem(
        `the zip holds ${JSON.stringify(name)}, which is not a JPEG or PNG image: zips may only contain .jpg/.png files`,
      );
    }
    if (!ext || EXTENSIONS[ext] === undefined || EXTENSIONS[ext] === 'application/zip') {
      throw new FileProblem(`the zip entry ${JSON.stringify(name)} needs a .jpg, .jpeg or .png name`);
    }
    out.push({ ...decodeImage(data, kind, `zip entry ${JSON.stringify(name)}`), entry: name });
  }
  if (out.length === 0)
    throw new FileProblem('the zip holds no images: it must contain at least one .jpg or .png file');
  return out;
}
