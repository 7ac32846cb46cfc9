import { imageBytesFoundGood, markImageBytesGood } from './checked-image-bytes';

describe('imageBytesFoundGood', () => {
  it('knows the very bytes marked, within the limit they were checked under', () => {
    const bytes = Buffer.from('a zip, say');
    expect(imageBytesFoundGood(bytes, 1024)).toBe(false);
    markImageBytesGood(bytes, 1024);
    expect(imageBytesFoundGood(bytes, 1024)).toBe(true);
    expect(imageBytesFoundGood(bytes, 4096)).toBe(true);
    // Checked under a larger limit than asked about: not known to unpack within this one.
    expect(imageBytesFoundGood(bytes, 512)).toBe(false);
    // Equal bytes in another buffer were not checked.
    expect(imageBytesFoundGood(Buffer.from('a zip, say'), 1024)).toBe(false);
  });

  it('keeps the smallest limit the bytes passed under', () => {
    const bytes = Buffer.from('another zip');
    markImageBytesGood(bytes, 512);
    markImageBytesGood(bytes, 4096);
    expect(imageBytesFoundGood(bytes, 512)).toBe(true);
  });
});
