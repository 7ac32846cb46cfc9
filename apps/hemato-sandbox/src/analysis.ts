/**
 * The sandbox's "AI": counts cell-like blobs in a decoded image by colour and size. It is deliberately
 * simple and deterministic (same pixels → same counts); it knows the stain colours of a Giemsa-like
 * smear (pink-red cells, purple nuclei, platelets and parasites). It is not a diagnostic method.
 */

export interface RingSpot {
  /** [x, y] in pixels of the original image. */
  center: [number, number];
  radius: number;
}

export interface ImageAnalysis {
  /** Zip entry name, for images that came inside a zip. */
  entry?: string;
  width: number;
  height: number;
  rbc: number;
  wbc: number;
  blasts: number;
  platelets: number;
  /** Red cells with a ring-form parasite. */
  parasites: RingSpot[];
}

/** Working resolution: larger images are pooled into blocks so analysis stays fast. */
const MAX_SIDE = 1200;

const RED = 1;
const PURPLE = 2;

// Pixel classes (inlined in the hot loop of analysePixels):
// purple (nuclei, platelets, parasites): b - g > 40 && r + g + b < 480
// red (red cells, pale centres included):  r - g > 50 && r - b > 30

interface Blob {
  area: number;
  minX: number;
  minY: number;
  maxX: number;
  maxY: number;
  sumX: number;
  sumY: number;
}

/** Labels 4-connected components of `cls === want`; returns the blobs and a label map. */
function components(cls: Uint8Array, w: number, h: number, want: number): { blobs: Blob[]; labels: Int32Array } {
  const labels = new Int32Array(w * h).fill(-1);
  const blobs: Blob[] = [];
  const stack = new Int32Array(w * h);
  for (let start = 0; start < cls.length; start++) {
    if (cls[start] !== want || labels[start] !== -1) continue;
    const id = blobs.length;
    const blob: Blob = { area: 0, minX: w, minY: h, maxX: 0, maxY: 0, sumX: 0, sumY: 0 };
    let sp = 0;
    const push = (q: number) => {
      if (cls[q] === want && labels[q] === -1) {
        labels[q] = id;
        stack[sp++] = q;
      }
    };
    stack[sp++] = start;
    labels[start] = id;
    while (sp > 0) {
      const p = stack[--sp];
      const x = p % w;
      const y = (p - x) / w;
      blob.area++;
      blob.sumX += x;
      blob.sumY += y;
      if (x < blob.minX) blob.minX = x;
      if (x > blob.maxX) blob.maxX = x;
      if (y < blob.minY) blob.minY = y;
      if (y > blob.maxY) blob.maxY = y;
      if (x > 0) push(p - 1);
      if (x < w - 1) push(p + 1);
      if (y > 0) push(p - w);
      if (y < h - 1) push(p + w);
    }
    blobs.push(blob);
  }
  return { blobs, labels };
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Analyses RGBA (or RGB with `channels` 3) pixels. Pixels are classified at full resolution and
 * pooled into blocks (a block is purple if a few of its pixels are, so thin parasite rings survive).
 */
export function analysePixels(data: Uint8Array, width: number, height: number, channels = 4): ImageAnalysis {
  const k = Math.max(1, Math.ceil(Math.max(width, height) / MAX_SIDE));
  const w = Math.ceil(width / k);
  const h = Math.ceil(height / k);
  const redCount = new Uint16Array(w * h);
  const purpleCount = new Uint16Array(w * h);
  const blockOfX = new Int32Array(width);
  for (let x = 0; x < width; x++) blockOfX[x] = (x / k) | 0;
  // The hot loop: one pass over every pixel, colour tests inlined (see isPurple / isRed).
  for (let y = 0; y < height; y++) {
    const by = ((y / k) | 0) * w;
    let i = y * width * channels;
    for (let x = 0; x < width; x++, i += channels) {
      const r = data[i];
      const g = data[i + 1];
      const b = data[i + 2];
      if (b - g > 40 && r + g + b < 480) purpleCount[by + blockOfX[x]]++;
      else if (r - g > 50 && r - b > 30) redCount[by + blockOfX[x]]++;
    }
  }
  const blockArea = k * k;
  const purpleMin = Math.max(1, Math.floor(blockArea / 8));
  const cls = new Uint8Array(w * h);
  for (let p = 0; p < cls.length; p++) {
    if (purpleCount[p] >= purpleMin) cls[p] = PURPLE;
    else if (redCount[p] * 2 >= blockArea) cls[p] = RED;
  }

  const red = components(cls, w, h, RED);
  const purple = components(cls, w, h, PURPLE);

  // A typical red cell: the median of the blobs big enough to be cells (not specks or ring interiors).
  const bigRed = red.blobs.filter((b) => b.area >= 12).map((b) => b.area);
  const cellArea = Math.max(12, median(bigRed.filter((a) => a >= median(bigRed) * 0.5)));
  let rbc = 0;
  for (const b of red.blobs) {
    if (b.area < cellArea * 0.3) continue;
    rbc += Math.max(1, Math.round(b.area / cellArea));
  }
  const cellRadius = Math.sqrt(cellArea / Math.PI);

  let wbc = 0;
  let blasts = 0;
  let platelets = 0;
  const parasites: RingSpot[] = [];
  for (const b of purple.blobs) {
    if (b.area < 2) continue;
    if (b.area > cellArea * 1.2) {
      blasts++;
      continue;
    }
    if (b.area > cellArea * 0.25) {
      wbc++;
      continue;
    }
    // Small purple blob: a parasite if it lies inside a red cell, a platelet otherwise.
    const pad = Math.max(2, Math.round(cellRadius * 0.25));
    let redAround = 0;
    let otherAround = 0;
    for (let y = Math.max(0, b.minY - pad); y <= Math.min(h - 1, b.maxY + pad); y++) {
      for (let x = Math.max(0, b.minX - pad); x <= Math.min(w - 1, b.maxX + pad); x++) {
        const c = cls[y * w + x];
        if (c === RED) redAround++;
        else if (c !== PURPLE) otherAround++;
      }
    }
    if (redAround > 0 && redAround / (redAround + otherAround) > 0.5) {
      const cx = b.sumX / b.area;
      const cy = b.sumY / b.area;
      parasites.push({
        center: [Math.round((cx + 0.5) * k), Math.round((cy + 0.5) * k)],
        radius: Math.max(1, Math.round(cellRadius * k * 1.1)),
      });
    } else {
      platelets++;
    }
  }
  return { width, height, rbc, wbc, blasts, platelets, parasites };
}
