import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

/** Options of {@link generateSmear}. Same options (seed included) → same bytes. */
export interface SmearOptions {
  width: number;
  height: number;
  format: 'png' | 'jpeg';
  seed: number;
  /** Draw ring-form parasites inside some red cells (about one cell in eight, at least one). */
  parasites?: boolean;
  /** White cells (default: one per 250 000 px, at least 1). */
  wbcCount?: number;
  /** Red cells (default: enough to cover about a third of the field). */
  rbcCount?: number;
  /** Platelets (default: one per ten red cells, at least 2). */
  plateletCount?: number;
  /** JPEG quality 1..100 (default 92). */
  quality?: number;
}

/** What was drawn, so tests can compare an analysis with the truth instead of hard-coded numbers. */
export interface SmearTruth {
  rbc: number;
  wbc: number;
  platelets: number;
  /** Red cells carrying a ring-form parasite. */
  parasites: number;
  /** Red cell radius in pixels. */
  rbcRadius: number;
  /** Centres of the parasitised red cells, in pixels. */
  parasiteCells: Array<{ x: number; y: number }>;
}

type Rgb = readonly [number, number, number];

/** Stain colours shared with the sandbox's analyser: these are the colours a Giemsa-like stain gives. */
export const SMEAR_COLOURS = {
  background: [236, 226, 214] as Rgb,
  rbc: [206, 94, 102] as Rgb,
  rbcPale: [226, 160, 158] as Rgb,
  wbcCytoplasm: [216, 202, 222] as Rgb,
  nucleus: [96, 44, 142] as Rgb,
  platelet: [132, 70, 162] as Rgb,
  parasite: [88, 38, 138] as Rgb,
  chromatin: [70, 24, 112] as Rgb,
} as const;

/** mulberry32: small, fast, good enough for placing cells; deterministic across platforms. */
function prng(seed: number): () => number {
  let a = seed >>> 0 || 0x9e3779b9;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 4);
  }

  fill(c: Rgb): void {
    for (let i = 0; i < this.data.length; i += 4) {
      this.data[i] = c[0];
      this.data[i + 1] = c[1];
      this.data[i + 2] = c[2];
      this.data[i + 3] = 255;
    }
  }

  /** A filled disk, or an annulus when `inner` > 0. */
  disk(cx: number, cy: number, r: number, c: Rgb, inner = 0): void {
    const x0 = Math.max(0, Math.floor(cx - r));
    const x1 = Math.min(this.width - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r));
    const y1 = Math.min(this.height - 1, Math.ceil(cy + r));
    const r2 = r * r;
    const i2 = inner * inner;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const d = (x - cx) * (x - cx) + (y - cy) * (y - cy);
        if (d > r2 || d < i2) continue;
        const i = (y * this.width + x) * 4;
        this.data[i] = c[0];
        this.data[i + 1] = c[1];
        this.data[i + 2] = c[2];
      }
    }
  }

  noise(rand: () => number, amp: number): void {
    for (let i = 0; i < this.data.length; i += 4) {
      const n = Math.round((rand() - 0.5) * 2 * amp);
      this.data[i] = clamp(this.data[i] + n);
      this.data[i + 1] = clamp(this.data[i + 1] + n);
      this.data[i + 2] = clamp(this.data[i + 2] + n);
    }
  }
}

const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

interface Placed {
  x: number;
  y: number;
  r: number;
}

/** Finds a spot for a circle of radius r that keeps `gap` px from every placed circle; undefined when crowded. */
function place(rand: () => number, w: number, h: number, r: number, gap: number, placed: Placed[]): Placed | undefined {
  for (let attempt = 0; attempt < 200; attempt++) {
    const x = r + 1 + rand() * Math.max(1, w - 2 * r - 2);
    const y = r + 1 + rand() * Math.max(1, h - 2 * r - 2);
    if (placed.every((p) => (p.x - x) ** 2 + (p.y - y) ** 2 >= (p.r + r + gap) ** 2)) {
      const spot = { x, y, r };
      placed.push(spot);
      return spot;
    }
  }
  return undefined;
}

/**
 * Draws a synthetic peripheral blood smear and returns the drawing and what it holds.
 * Red cells with pale centres, white cells with lobed purple nuclei, platelets, and optionally
 * ring-form parasites (a thin purple ring with a chromatin dot) inside some red cells.
 */
export function generateSmearWithTruth(options: SmearOptions): { image: Buffer; truth: SmearTruth } {
  const { width: w, height: h, format, seed } = options;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 32 || h < 32) {
    throw new Error('generateSmear: width and height must be whole numbers >= 32');
  }
  const rand = prng(seed);
  const canvas = new Canvas(w, h);
  canvas.fill(SMEAR_COLOURS.background);

  const r = Math.max(7, Math.min(40, Math.round(Math.min(w, h) / 22)));
  const placed: Placed[] = [];

  // White cells first: they are big and need room.
  const wbcWanted = options.wbcCount ?? Math.max(1, Math.round((w * h) / 250_000));
  let wbc = 0;
  for (let i = 0; i < wbcWanted; i++) {
    const spot = place(rand, w, h, r * 1.6, 4, placed);
    if (!spot) break;
    wbc++;
    canvas.disk(spot.x, spot.y, spot.r, SMEAR_COLOURS.wbcCytoplasm);
    // A lobed nucleus: two or three overlapping lobes, so it stays one purple blob.
    const lobes = 2 + Math.floor(rand() * 2);
    const start = rand() * Math.PI * 2;
    for (let l = 0; l < lobes; l++) {
      const a = start + (l * Math.PI * 2) / lobes;
      canvas.disk(spot.x + Math.cos(a) * r * 0.35, spot.y + Math.sin(a) * r * 0.35, r * 0.5, SMEAR_COLOURS.nucleus);
    }
  }

  const rbcWanted = options.rbcCount ?? Math.max(1, Math.floor((0.33 * w * h) / (Math.PI * r * r)));
  const cells: Placed[] = [];
  for (let i = 0; i < rbcWanted; i++) {
    const rr = r * (0.92 + rand() * 0.16);
    const spot = place(rand, w, h, rr, 3, placed);
    if (!spot) break;
    cells.push(spot);
    canvas.disk(spot.x, spot.y, rr, SMEAR_COLOURS.rbc);
    canvas.disk(spot.x, spot.y, rr * 0.45, SMEAR_COLOURS.rbcPale);
  }

  const parasiteCells: Array<{ x: number; y: number }> = [];
  if (options.parasites && cells.length > 0) {
    const want = Math.max(1, Math.round(cells.length / 8));
    const step = cells.length / want;
    for (let k = 0; k < want; k++) {
      const cell = cells[Math.floor(k * step)];
      const a = rand() * Math.PI * 2;
      const px = cell.x + Math.cos(a) * cell.r * 0.28;
      const py = cell.y + Math.sin(a) * cell.r * 0.28;
      const ringR = cell.r * 0.34;
      const t = Math.max(2, cell.r * 0.12);
      canvas.disk(px, py, ringR, SMEAR_COLOURS.parasite, ringR - t);
      // The chromatin dot sits on the ring ("signet ring"), so ring and dot make one blob.
      const d = rand() * Math.PI * 2;
      canvas.disk(
        px + Math.cos(d) * (ringR - t / 2),
        py + Math.sin(d) * (ringR - t / 2),
        t * 1.1,
        SMEAR_COLOURS.chromatin,
      );
      parasiteCells.push({ x: Math.round(cell.x), y: Math.round(cell.y) });
    }
  }

  const plateletWanted = options.plateletCount ?? Math.max(2, Math.round(cells.length / 10));
  let platelets = 0;
  const pr = Math.max(2, r * 0.16);
  for (let i = 0; i < plateletWanted; i++) {
    const spot = place(rand, w, h, pr, 4, placed);
    if (!spot) break;
    platelets++;
    canvas.disk(spot.x, spot.y, pr, SMEAR_COLOURS.platelet);
  }

  canvas.noise(rand, 5);

  const raw = {
    width: w,
    height: h,
    data: Buffer.from(canvas.data.buffer, canvas.data.byteOffset, canvas.data.length),
  };
  const image =
    format === 'png'
      ? PNG.sync.write(Object.assign(new PNG({ width: w, height: h }), { data: raw.data }))
      : jpeg.encode(raw, options.quality ?? 92).data;
  return {
    image,
    truth: { rbc: cells.length, wbc, platelets, parasites: parasiteCells.length, rbcRadius: r, parasiteCells },
  };
}

/** A synthetic smear image (PNG or JPEG bytes), deterministic by seed. See {@link generateSmearWithTruth}. */
export function generateSmear(options: SmearOptions): Buffer {
  return generateSmearWithTruth(options).image;
}
