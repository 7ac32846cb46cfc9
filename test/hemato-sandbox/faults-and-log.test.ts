import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateSmear } from '@hemato/testing';
import type { RunningSandbox } from '../../apps/hemato-sandbox/src/bootstrap';
import { call, createStudy, LocalServer, login, startSandbox, upload, waitDone } from './sandbox-helpers';

const image = generateSmear({ width: 300, height: 200, format: 'png', seed: 51, parasites: true });

describe('Hemato.AI sandbox: faults on demand', () => {
  let sb: RunningSandbox;
  let cb: LocalServer;
  let token: string;

  beforeAll(async () => {
    sb = await startSandbox({ SANDBOX_PROCESSING_MS: '100' });
    cb = await new LocalServer().start();
    token = await login(sb.url);
  });
  afterEach(async () => {
    expect((await call(sb.url, 'DELETE', '/_sandbox/faults')).status).toBe(200);
  });
  afterAll(async () => {
    await sb.close();
    await cb.stop();
  });

  const setFaults = async (faults: Record<string, unknown>) => {
    const a = await call(sb.url, 'POST', '/_sandbox/faults', { json: faults });
    expect(a.status).toBe(200);
    return a.body;
  };

  async function readyStudy(callbackPath: string): Promise<string> {
    const id = await createStudy(sb.url, token);
    await upload(sb.url, token, id, image);
    const t = await call(sb.url, 'POST', `/pbs/${id}/tasks`, {
      token,
      json: { diagnostic_tasks: ['pbs_v1'], callback_url: `${cb.url}${callbackPath}` },
    });
    expect(t.status).toBe(202);
    await waitDone(sb.url, token, id);
    return id;
  }

  it('defaults to no fault at all', async () => {
    const a = await call(sb.url, 'GET', '/_sandbox/faults');
    expect(a.body.faults).toEqual(
      expect.objectContaining({
        latency_ms: 0,
        error_rate: 0,
        rate_limit_rate: 0,
        callback_drop_rate: 0,
        processing_fail_rate: 0,
      }),
    );
  });

  it('added latency: a client with a short timeout gives up, only on the chosen paths', async () => {
    await setFaults({ latency_ms: 5000, paths: ['/pbs'] });
    await expect(call(sb.url, 'GET', '/pbs', { token, signal: AbortSignal.timeout(1000) })).rejects.toThrow();
    expect((await call(sb.url, 'GET', '/heartbeat', { signal: AbortSignal.timeout(1000) })).status).toBe(200);
    await setFaults({});
    expect((await call(sb.url, 'GET', '/pbs', { token, signal: AbortSignal.timeout(1000) })).status).toBe(200);
  });

  it('a share of 5xx: error_rate 0.5 fails exactly every second request, in the envelope', async () => {
    await setFaults({ error_rate: 0.5, error_status: 502 });
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const a = await call(sb.url, 'GET', '/pbs', { token });
      statuses.push(a.status);
      if (a.status === 502) {
        expect(a.body.status).toBe(502);
        expect(a.body.error).toMatch(/fault injection/);
      }
    }
    expect(statuses.filter((s) => s === 502)).toHaveLength(5);
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
  });

  it('fail_next: the next N requests fail, then service resumes', async () => {
    await setFaults({ fail_next: 2 });
    expect((await call(sb.url, 'GET', '/heartbeat')).status).toBe(503);
    expect((await call(sb.url, 'GET', '/heartbeat')).status).toBe(503);
    expect((await call(sb.url, 'GET', '/heartbeat')).status).toBe(200);
  });

  it('drop_answer_next: the request is carried out, then the connection closes without an answer', async () => {
    const id = await createStudy(sb.url, token);
    await upload(sb.url, token, id, image);
    await setFaults({ drop_answer_next: 1, paths: ['/pbs/'] });
    await expect(
      call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } }),
    ).rejects.toThrow();
    // The client saw nothing, yet the run was started: the study is processing, then ready with version 1.
    const done = await waitDone(sb.url, token, id);
    expect(done.body.results).toMatchObject({ report_status: 'ready', report_version: 1 });
    const log = await call(sb.url, 'GET', `/_sandbox/requests?path=/pbs/${id}/tasks`);
    expect(log.body.requests).toEqual([expect.objectContaining({ status: 202, fault: 'answer dropped' })]);
    const knobs = await call(sb.url, 'GET', '/_sandbox/faults');
    expect(knobs.body.faults.drop_answer_next).toBe(0);
    expect(knobs.body.counters.answers_dropped).toBe(1);
  });

  it('429 with Retry-After', async () => {
    await setFaults({ rate_limit_next: 1, retry_after_s: 7 });
    const limited = await call(sb.url, 'POST', '/pbs', { token });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('7');
    expect(limited.body.user_message).not.toBe('');
    expect((await call(sb.url, 'POST', '/pbs', { token })).status).toBe(201);
    await setFaults({ rate_limit_rate: 1, retry_after_s: 2 });
    for (let i = 0; i < 3; i++) expect((await call(sb.url, 'GET', '/pbs', { token })).status).toBe(429);
  });

  it('callbacks dropped: never sent, and recorded as dropped', async () => {
    await setFaults({ callback_drop_rate: 1 });
    const dropped = await readyStudy('/drop/1');
    await setFaults({});
    await readyStudy('/drop/2');
    // Callbacks go out in order: once the second has arrived, the first would have too.
    await cb.waitFor('/drop/2');
    expect(cb.received.filter((r) => r.path === '/drop/1')).toEqual([]);
    const log = await call(sb.url, 'GET', `/_sandbox/callbacks?pbs_study_id=${dropped}`);
    expect(log.body.callbacks).toEqual([expect.objectContaining({ outcome: 'dropped', attempts: 0 })]);
  });

  it('callbacks delayed: the report is ready before the callback comes', async () => {
    await setFaults({ callback_delay_ms: 2500 });
    const id = await readyStudy('/late/1');
    expect(cb.received.filter((r) => r.path === '/late/1')).toEqual([]);
    const pending = await call(sb.url, 'GET', `/_sandbox/callbacks?pbs_study_id=${id}`);
    expect(pending.body.callbacks[0]).toEqual(expect.objectContaining({ outcome: 'pending', delay_ms: 2500 }));
    const [hit] = await cb.waitFor('/late/1');
    expect(hit.body).toEqual(expect.objectContaining({ pbs_stody_id: id, report_status: 'ready' }));
  });

  it('processing fails: report_status failed with a user_message, in status and callback; no report', async () => {
    await setFaults({ processing_fail_rate: 1, processing_fail_message: 'Slide too thick to analyse (sandbox).' });
    const id = await createStudy(sb.url, token);
    await upload(sb.url, token, id, image);
    await call(sb.url, 'POST', `/pbs/${id}/tasks`, {
      token,
      json: { diagnostic_tasks: ['pbs_v1'], callback_url: `${cb.url}/fail/1` },
    });
    const status = await waitDone(sb.url, token, id);
    expect(status.body.results.report_status).toBe('failed');
    expect(status.body.user_message).toBe('Slide too thick to analyse (sandbox).');
    const [hit] = await cb.waitFor('/fail/1');
    expect(hit.body).toEqual(
      expect.objectContaining({
        pbs_stody_id: id,
        report_status: 'failed',
        user_message: 'Slide too thick to analyse (sandbox).',
      }),
    );
    const report = await call(sb.url, 'GET', `/pbs/${id}/report`, { token });
    expect(report.status).toBe(409);
    expect(report.body.user_message).toBe('Slide too thick to analyse (sandbox).');
    // Asking again (faults cleared) recovers: version 1 appears.
    await setFaults({});
    await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } });
    expect((await waitDone(sb.url, token, id)).body.results.report_status).toBe('ready');
  });

  it('refuses an unknown fault knob', async () => {
    const a = await call(sb.url, 'POST', '/_sandbox/faults', { json: { explode: true } });
    expect(a.status).toBe(400);
  });

  it('takes faults from SANDBOX_FAULTS at start', async () => {
    const other = await startSandbox({ SANDBOX_FAULTS: JSON.stringify({ fail_next: 1, error_status: 500 }) });
    try {
      expect((await call(other.url, 'GET', '/heartbeat')).status).toBe(500);
      expect((await call(other.url, 'GET', '/heartbeat')).status).toBe(200);
    } finally {
      await other.close();
    }
  });
});

describe('Hemato.AI sandbox: request log', () => {
  let sb: RunningSandbox;
  let token: string;

  beforeAll(async () => {
    sb = await startSandbox({ SANDBOX_PROCESSING_MS: '0' });
    token = await login(sb.url);
  });
  afterAll(() => sb.close());

  it('keeps every request with tags and bodies, never the token or the password hash', async () => {
    expect((await call(sb.url, 'DELETE', '/_sandbox/requests')).status).toBe(200);
    await login(sb.url);
    const id = await createStudy(sb.url, token, { patient_proxy_id: 'px-77', site: 'lab-2' });
    await call(sb.url, 'POST', `/pbs/${id}/files?file_name=a.png`, { token, body: image });
    await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } });
    await call(sb.url, 'GET', `/pbs/${id}/report`, { token });

    const log = (await call(sb.url, 'GET', '/_sandbox/requests')).body.requests as Array<Record<string, any>>;
    expect(log.map((r) => `${r.method} ${r.path.replace(id, ':id')} ${r.status}`)).toEqual([
      'POST /auth/login 202',
      'POST /pbs 201',
      'POST /pbs/:id/files 201',
      'POST /pbs/:id/tasks 202',
      'GET /pbs/:id/report 200',
    ]);
    const [loginReq, create, file, tasks] = log;
    expect(loginReq.body).toEqual({ user: 'ali@example.com', pass_hash: '[hidden]' });
    expect(create.body).toEqual({ tags: { patient_proxy_id: 'px-77', site: 'lab-2' } });
    for (const r of log.slice(1)) {
      expect(r.tags).toEqual({ patient_proxy_id: 'px-77', site: 'lab-2' });
      expect(r.principal).toMatch(/^session:/);
      expect(r.headers.authorization).toBeUndefined();
      expect(JSON.stringify(r)).not.toContain(token);
    }
    expect(file.query).toEqual({ file_name: 'a.png' });
    expect(file.body).toEqual({
      bytes: image.length,
      file_id: expect.stringMatching(/^sha224-i-/),
      content_type: 'image/png',
      type_from: 'file_name',
    });
    expect(tasks.body).toEqual({ diagnostic_tasks: ['pbs_v1'] });

    const filtered = await call(sb.url, 'GET', `/_sandbox/requests?pbs_study_id=${id}&method=post`);
    expect(filtered.body.requests).toHaveLength(3);
    await call(sb.url, 'DELETE', '/_sandbox/requests');
    expect((await call(sb.url, 'GET', '/_sandbox/requests')).body.requests).toEqual([]);
  });

  it('logs refused requests too (401 without a token)', async () => {
    await call(sb.url, 'DELETE', '/_sandbox/requests');
    await call(sb.url, 'POST', '/pbs', { json: { tags: { a: 'b' } } });
    const [r] = (await call(sb.url, 'GET', '/_sandbox/requests')).body.requests;
    expect(r).toEqual(expect.objectContaining({ method: 'POST', path: '/pbs', status: 401 }));
    expect(r.principal).toBeUndefined();
  });
});

describe('Hemato.AI sandbox: SANDBOX_DATA_DIR keeps studies across restarts', () => {
  it('a restarted sandbox still knows the study, its report and the session token, and finishes a run', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sandbox-data-'));
    const first = await startSandbox({ SANDBOX_DATA_DIR: dir, SANDBOX_PROCESSING_MS: '0' });
    const token = await login(first.url);
    const id = await createStudy(first.url, token, { k: 'v' });
    await upload(first.url, token, id, image);
    await call(first.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } });
    const report = (await call(first.url, 'GET', `/pbs/${id}/report`, { token })).body.results;
    await first.close();

    const second = await startSandbox({ SANDBOX_DATA_DIR: dir, SANDBOX_PROCESSING_MS: '800' });
    try {
      const status = await call(second.url, 'GET', `/pbs/${id}/status`, { token });
      expect(status.status).toBe(200);
      expect(status.body.results.report_status).toBe('ready');
      expect((await call(second.url, 'GET', `/pbs/${id}/report`, { token })).body.results).toEqual(report);
      // A run under way when the sandbox stops finishes after the restart.
      await call(second.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } });
      await second.close();
      const third = await startSandbox({ SANDBOX_DATA_DIR: dir });
      try {
        const done = await waitDone(third.url, token, id);
        expect(done.body.results).toEqual(expect.objectContaining({ report_status: 'ready', report_version: 2 }));
      } finally {
        await third.close();
      }
    } finally {
      await second.close();
    }
  });
});
