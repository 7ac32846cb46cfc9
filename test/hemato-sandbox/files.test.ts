import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { zipSync } from 'fflate';
import { generateSmear } from '@hemato/testing';
import type { RunningSandbox } from '../../apps/hemato-sandbox/src/bootstrap';
import { call, createStudy, login, startSandbox, upload, waitDone } from './sandbox-helpers';

describe('Hemato.AI sandbox: file uploads', () => {
  let sb: RunningSandbox;
  let token: string;
  const png = generateSmear({ width: 300, height: 220, format: 'png', seed: 21 });
  const jpg = generateSmear({ width: 300, height: 220, format: 'jpeg', seed: 22 });
  const MAX = 400_000;

  beforeAll(async () => {
    sb = await startSandbox({ SANDBOX_MAX_FILE_BYTES: String(MAX), SANDBOX_PROCESSING_MS: '0' });
    token = await login(sb.url);
  });
  afterAll(() => sb.close());

  async function expect400(body: Buffer, contentType: string | undefined, query: string, why: RegExp) {
    const id = await createStudy(sb.url, token);
    const a = await call(sb.url, 'POST', `/pbs/${id}/files${query}`, {
      token,
      body,
      headers: contentType ? { 'content-type': contentType } : {},
    });
    expect(a.status).toBe(400);
    expect(a.body.status).toBe(400);
    expect(a.body.error).toMatch(why);
    expect(a.body.user_message).toMatch(why);
    // Nothing was stored: the study still has no files.
    const report = await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } });
    expect(report.status).toBe(400);
    expect(report.body.error).toMatch(/no files/);
  }

  it('is idempotent: the same bytes twice give the same id and count once', async () => {
    const id = await createStudy(sb.url, token);
    const first = await upload(sb.url, token, id, png);
    const second = await upload(sb.url, token, id, png);
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body.results.file_id).toBe(first.body.results.file_id);
    expect(first.body.results.file_id).toBe(`sha224-i-${createHash('sha224').update(png).digest('hex')}`);
    expect(second.body.debug_info.duplicate).toBe(true);
    await upload(sb.url, token, id, jpg, 'image/jpeg');
    await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } });
    await waitDone(sb.url, token, id);
    const report = await call(sb.url, 'GET', `/pbs/${id}/report`, { token });
    expect(report.body.results.file_ids).toHaveLength(2);
  });

  it('takes files only by POST, the one method the reference gives for uploads: PUT is 405 and stores nothing', async () => {
    const id = await createStudy(sb.url, token);
    const put = await call(sb.url, 'PUT', `/pbs/${id}/files`, {
      token,
      body: png,
      headers: { 'content-type': 'image/png' },
    });
    expect(put.status).toBe(405);
    expect(put.body.status).toBe(405);
    expect(put.headers.get('allow')).toBe('POST');
    const tasks = await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } });
    expect(tasks.status).toBe(400);
    expect(tasks.body.error).toMatch(/no files/);
  });

  it('refuses uploads after /tasks with 409', async () => {
    const id = await createStudy(sb.url, token);
    await upload(sb.url, token, id, png);
    expect(
      (await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } })).status,
    ).toBe(202);
    const late = await upload(sb.url, token, id, jpg, 'image/jpeg');
    expect(late.status).toBe(409);
    expect(late.body.error).toMatch(/no more files/);
  });

  it('accepts a zip of jpg and png files and reports on each image', async () => {
    const id = await createStudy(sb.url, token);
    const zip = Buffer.from(zipSync({ 'slide/a.png': png, 'slide/b.jpg': jpg }));
    const a = await call(sb.url, 'POST', `/pbs/${id}/files?file_name=slides.zip`, { token, body: zip });
    expect(a.status).toBe(201);
    expect(a.body.debug_info.images).toBe(2);
  });

  it('gives 400s that say what is wrong', async () => {
    await expect400(png, undefined, '', /cannot determine the file type/);
    await expect400(Buffer.alloc(0), 'image/png', '', /body is empty/);
    await expect400(png, 'image/gif', '', /unsupported Content-Type image\/gif/);
    await expect400(png, undefined, '?file_name=scan.tiff', /cannot tell the file type from file_name/);
    await expect400(png, 'multipart/form-data; boundary=x', '', /multipart/);
    await expect400(jpg, 'image/png', '', /declared image\/png but its bytes are a JPEG/);
    const corruptPng = Buffer.from(png);
    corruptPng.fill(0x42, 60, 400); // break the image data (and its CRC)
    await expect400(corruptPng, 'image/png', '', /not a valid PNG image/);
    const truncatedJpg = jpg.subarray(0, 200);
    await expect400(truncatedJpg, 'image/jpeg', '', /not a valid JPEG image/);
    const withText = Buffer.from(zipSync({ 'a.png': png, 'notes.txt': new TextEncoder().encode('hello') }));
    await expect400(withText, 'application/zip', '', /notes\.txt.*not a JPEG or PNG/);
    await expect400(Buffer.from(zipSync({})), 'application/zip', '', /zip holds no images/);
  });

  it('answers 413 above SANDBOX_MAX_FILE_BYTES, with and without Content-Length', async () => {
    const id = await createStudy(sb.url, token);
    const big = generateSmear({ width: 1000, height: 800, format: 'png', seed: 23 });
    expect(big.length).toBeGreaterThan(MAX);
    const a = await upload(sb.url, token, id, big);
    expect(a.status).toBe(413);
    expect(a.body.error).toMatch(new RegExp(`limit of ${MAX} bytes`));

    // Chunked (no Content-Length): the limit is found while streaming. node:http here, because Node's
    // bundled fetch stalls when client and server share one process and the server answers mid-body.
    const status = await new Promise<number>((resolve, reject) => {
      const rq = request(
        `${sb.url}/pbs/${id}/files`,
        {
          method: 'POST',
          agent: false,
          headers: { authorization: token, 'content-type': 'image/png', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      rq.on('error', reject);
      void (async () => {
        for (let i = 0; i < big.length; i += 64 * 1024) {
          if (!rq.write(big.subarray(i, i + 64 * 1024))) await new Promise((r) => rq.once('drain', r));
        }
        rq.end();
      })().catch(() => undefined);
    });
    const b = { status };
    expect(b.status).toBe(413);
    // The sandbox keeps serving afterwards.
    expect((await upload(sb.url, token, id, png)).status).toBe(201);
  });

  it('refuses unknown diagnostic tasks and non-https callbacks', async () => {
    const id = await createStudy(sb.url, token);
    await upload(sb.url, token, id, png);
    const bad = await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v9'] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/unknown diagnostic task\(s\) pbs_v9: available tasks are pbs_v1/);
    const http = await call(sb.url, 'POST', `/pbs/${id}/tasks`, {
      token,
      json: { diagnostic_tasks: ['pbs_v1'], callback_url: 'http://example.com/cb' },
    });
    expect(http.status).toBe(400);
    expect(http.body.error).toMatch(/must be an https URL/);
  });

  it('with Expect: 100-continue, refuses a bad upload before the body is sent and asks for a good one', async () => {
    const id = await createStudy(sb.url, token);
    const send = (auth: string) =>
      new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
        let continued = false;
        const rq = request(`${sb.url}/pbs/${id}/files`, {
          method: 'POST',
          headers: {
            authorization: auth,
            'content-type': 'image/png',
            'content-length': png.length,
            expect: '100-continue',
          },
        });
        rq.on('continue', () => {
          continued = true;
          rq.end(png);
        });
        let answered = false;
        rq.on('response', (res) => {
          answered = true;
          resolve({ status: res.statusCode ?? 0, continued });
          res.resume();
          if (!continued) rq.destroy(); // the body is never sent
        });
        rq.on('error', (err) => (answered ? undefined : reject(err)));
        rq.flushHeaders();
      });
    expect(await send('not-a-token')).toEqual({ status: 401, continued: false });
    expect(await send(token)).toEqual({ status: 201, continued: true });
  });
});
