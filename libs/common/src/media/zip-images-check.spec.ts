import { zipSync } from 'fflate';
import { zipImagesProblem, zipImagesProblemYielding } from './zip-images-check';

/** A 1x1 PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

/** A PNG signature followed by `bytes` zeros, deflated: a few kB that unpack to `bytes`. */
function bomb(bytes: number): Uint8Array {
  const big = new Uint8Array(bytes);
  big.set(PNG.subarray(0, 8));
  return zipSync({ 'slide.png': big }, { level: 9 });
}

describe('zipImagesProblemYielding', () => {
  it('finds what zipImagesProblem finds', async () => {
    const good = zipSync({ 'a/slide.png': PNG, 'b.png': PNG });
    const cut = good.subarray(0, good.length - 30);
    const named = zipSync({ 'notes.txt': PNG });
    const big = bomb(4 * 1024 * 1024);
    for (const zip of [good, cut, named, big]) {
      const opts = { maxUnpackedBytes: 1024 * 1024 };
      expect(await zipImagesProblemYielding(zip, opts)).toBe(zipImagesProblem(zip, opts));
    }
    expect(await zipImagesProblemYielding(good)).toBeNull();
    expect(await zipImagesProblemYielding(big, { maxUnpackedBytes: 1024 * 1024 })).toMatch(
      /IMAGE_ZIP_MAX_UNPACKED_BYTES/,
    );
  });

  it('lets other work run while it inflates a bomb, before it refuses it', async () => {
    const zip = bomb(32 * 1024 * 1024);
    const events: string[] = [];
    setImmediate(() => events.push('other work'));
    const problem = await zipImagesProblemYielding(zip, { maxUnpackedBytes: 16 * 1024 * 1024 });
    events.push('refused');
    expect(problem).toMatch(/more than 16777216 bytes/);
    expect(events).toEqual(['other work', 'refused']);
  });
});
