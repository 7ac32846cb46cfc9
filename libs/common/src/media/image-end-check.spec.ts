import { generateSmear } from '../../../testing/src/smear';
import { ImageEndCheck, imageEndProblem } from './image-end-check';

describe('ImageEndCheck', () => {
  const jpeg = generateSmear({ width: 96, height: 64, format: 'jpeg', seed: 1 });
  const png = generateSmear({ width: 96, height: 64, format: 'png', seed: 2 });
  const cases = [
    ['image/jpeg', jpeg],
    ['image/png', png],
  ] as const;

  it.each(cases)('a whole %s passes, pushed whole or a byte at a time, with bytes after its end too', (type, bytes) => {
    expect(imageEndProblem(bytes, type)).toBeNull();
    const check = new ImageEndCheck(type);
    for (let i = 0; i < bytes.length; i++) check.push(bytes.subarray(i, i + 1));
    expect(check.end()).toBeNull();
    expect(imageEndProblem(Buffer.concat([bytes, Buffer.from('appended by a camera')]), type)).toBeNull();
  });

  it.each(cases)('a %s cut anywhere is found cut short', (type, bytes) => {
    for (let cut = 3; cut < bytes.length; cut += Math.max(1, Math.floor(bytes.length / 300)))
      expect({ cut, problem: imageEndProblem(bytes.subarray(0, cut), type) }).toEqual({
        cut,
        problem: expect.stringMatching(/cut short/),
      });
    expect(imageEndProblem(bytes.subarray(0, bytes.length - 1), type)).toMatch(/cut short/);
  });

  it("a JPEG's end marker inside a segment (an EXIF thumbnail) does not count as its end", () => {
    const thumb = Buffer.from(jpeg);
    const app1 = Buffer.concat([Buffer.from([0xff, 0xe1]), Buffer.alloc(2), thumb]);
    app1.writeUInt16BE(thumb.length + 2, 2);
    const withThumb = Buffer.concat([jpeg.subarray(0, 2), app1, jpeg.subarray(2)]);
    expect(imageEndProblem(withThumb, 'image/jpeg')).toBeNull();
    expect(imageEndProblem(withThumb.subarray(0, app1.length + 200), 'image/jpeg')).toMatch(/cut short/);
  });
});
