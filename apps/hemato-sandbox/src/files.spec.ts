import { FileProblem, fileIdOf, fileTypeOf } from './files';

describe('fileTypeOf', () => {
  it('takes the Content-Type header first, then content_type, then the file_name extension', () => {
    expect(fileTypeOf('image/png', 'image/jpeg', 'a.zip')).toEqual({ type: 'image/png', source: 'content-type' });
    expect(fileTypeOf(undefined, 'image/jpeg', 'a.zip')).toEqual({ type: 'image/jpeg', source: 'content_type' });
    expect(fileTypeOf(undefined, null, 'A.JPEG')).toEqual({ type: 'image/jpeg', source: 'file_name' });
    expect(fileTypeOf(undefined, null, 'slides.zip')).toEqual({ type: 'application/zip', source: 'file_name' });
  });

  it("lets curl's default form type and octet-stream fall through to the next source", () => {
    expect(fileTypeOf('application/x-www-form-urlencoded', null, 'x.png').type).toBe('image/png');
    expect(fileTypeOf('application/octet-stream', 'image/jpg', null).type).toBe('image/jpeg');
  });

  it('accepts parameters and common aliases', () => {
    expect(fileTypeOf('image/jpeg; charset=binary', null, null).type).toBe('image/jpeg');
    expect(fileTypeOf('application/x-zip-compressed', null, null).type).toBe('application/zip');
  });

  it('refuses with a reason when no type can be found or it is unsupported', () => {
    expect(() => fileTypeOf(undefined, null, null)).toThrow(/cannot determine the file type/);
    expect(() => fileTypeOf('image/gif', null, null)).toThrow(FileProblem);
    expect(() => fileTypeOf(undefined, 'text/plain', null)).toThrow(/unsupported content_type text\/plain/);
    expect(() => fileTypeOf(undefined, null, 'noext')).toThrow(/cannot tell the file type/);
  });
});

describe('fileIdOf', () => {
  it('is sha224-i- and the hex SHA-224 of the bytes', () => {
    // SHA-224 of the empty string, a published test vector.
    expect(fileIdOf(new Uint8Array())).toBe('sha224-i-d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f');
  });
});
