import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { HematoApiError, fileIdOf, type HematoClient } from '@hemato/hemato-client';
import { startLocalHemato, type LocalHematoServer } from './support/local-hemato-server';
import { generatedJpegStream, jpegBytes, pngBytes, sessionClient, zipOf } from './support/fixtures';

describe('Hemato client: uploads', () => {
  let server: LocalHematoServer;
  let client: HematoClient;
  let studyId: string;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hemato-upload-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    server = await startLocalHemato();
    client = sessionClient(server);
    ({ studyId } = await client.createStudy());
  });
  afterEach(async () => {
    await client.close();
    await server.close();
  });

  const uploads = () => server.log.filter((r) => r.path.endsWith('/files'));

  it('uploads a path, a buffer and a stream as raw bodies with their Content-Type, ids matching the bytes', async () => {
    const jpg = jpegBytes(300_000);
    const png = pngBytes(70_000);
    const file = path.join(dir, 'smear.jpg');
    await writeFile(file, jpg);
    const a = await client.uploadFile(studyId, file, 'image/jpeg');
    const b = await client.uploadFile(studyId, png, 'png');
    const c = await client.uploadFile(studyId, Readable.from([png.subarray(0, 3), png.subarray(3)]), 'image/png');
    expect(a).toEqual({ studyId, fileId: fileIdOf(jpg), bytes: 300_000 });
    expect(b).toEqual({ studyId, fileId: fileIdOf(png), bytes: 70_000 });
    expect(c.fileId).toBe(b.fileId);
    expect(fileIdOf(jpg)).toBe('sha224-i-' + createHash('sha224').update(jpg).digest('hex'));
    expect(uploads().map((r) => [r.contentType, r.bytes])).toEqual([
      ['image/jpeg', 300_000],
      ['image/png', 70_000],
      ['image/png', 70_000],
    ]);
    // Same bytes twice count once.
    expect(server.studies.get(studyId)!.files.size).toBe(2);
  });

  it('detects a file id that does not match the bytes sent', async () => {
    server.wrongFileIdNext = true;
    const err = (await client.uploadFile(studyId, jpegBytes(), 'jpg').catch((e: unknown) => e)) as HematoApiError;
    expect(err).toBeInstanceOf(HematoApiError);
    expect(err).toMatchObject({ kind: 'file_id_mismatch', status: 201, method: 'POST', path: `/pbs/${studyId}/files` });
    // also when the source is a stream hashed on the fly
    server.wrongFileIdNext = true;
    await expect(client.uploadFile(studyId, generatedJpegStream(3_000_000), 'jpg')).rejects.toMatchObject({
      kind: 'file_id_mismatch',
    });
  });

  it('accepts a zip of jpg/png files and refuses other types before any network call', async () => {
    const zip = zipOf({ 'a.jpg': jpegBytes(), 'dir/b.PNG': pngBytes() });
    const zipPath = path.join(dir, 'ok.zip');
    await writeFile(zipPath, zip);
    await expect(client.uploadFile(studyId, zipPath, 'application/zip')).resolves.toMatchObject({
      fileId: fileIdOf(zip),
    });
    expect(uploads()).toHaveLength(1);

    const refused = [
      () => client.uploadFile(studyId, zipOf({ 'a.jpg': jpegBytes(), 'notes.txt': Buffer.from('x') }), 'zip'),
      () => client.uploadFile(studyId, zipOf({}), 'zip'),
      () => client.uploadFile(studyId, Buffer.from('%PDF-1.7 ...'), 'application/pdf'),
      () => client.uploadFile(studyId, Buffer.from('GIF89a......'), 'image/gif'),
      () => client.uploadFile(studyId, pngBytes(), 'image/jpeg'),
      () => client.uploadFile(studyId, Readable.from([Buffer.from('not an image at all')]), 'jpg'),
      () => client.uploadFile(studyId, Buffer.alloc(0), 'png'),
    ];
    for (const call of refused) {
      await expect(call()).rejects.toMatchObject({ kind: 'unsupported_file_type' });
    }
    expect(uploads()).toHaveLength(1);
    expect(server.log.filter((r) => r.path === '/auth/login')).toHaveLength(1);
  });

  it('closes a stream source it was handed when the call is refused', async () => {
    const guarded = sessionClient(server, {
      beforeRequest: () => {
        throw new Error('refused by policy');
      },
    });
    try {
      const stream = generatedJpegStream(10 * 1024 * 1024);
      await expect(guarded.uploadFile(studyId, stream, 'jpg')).rejects.toThrow('refused by policy');
      expect(stream.destroyed).toBe(true);
      const junk = Readable.from([Buffer.from('not an image')]);
      await expect(client.uploadFile(studyId, junk, 'png')).rejects.toMatchObject({ kind: 'unsupported_file_type' });
      expect(junk.destroyed).toBe(true);
      expect(uploads()).toHaveLength(0);
    } finally {
      await guarded.close();
    }
  });

  it('refuses uploads to a closed study with the service error (409)', async () => {
    await client.uploadFile(studyId, jpegBytes(), 'jpg');
    await client.requestTasks(studyId, ['pbs_v1']);
    await expect(client.uploadFile(studyId, jpegBytes(), 'jpg')).rejects.toMatchObject({
      kind: 'http',
      status: 409,
      error: 'study is closed to uploads',
    });
  });

  it('streams a 200 MB upload without holding it in memory', async () => {
    const total = 200 * 1024 * 1024;
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const up = await client.uploadFile(studyId, generatedJpegStream(total), 'image/jpeg');
      expect(up.bytes).toBe(total);
      expect(server.studies.get(studyId)!.files.get(up.fileId)).toBe(total);
    } finally {
      clearInterval(sampler);
    }
    // Client and server share this process; both stream. Holding the body would add 200 MiB at least.
    expect((peak - baseline) / 1024 / 1024).toBeLessThan(120);
  });
});
