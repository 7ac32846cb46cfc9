import { createHash } from 'node:crypto';
import { generateSmear } from '@hemato/testing';
import type { RunningSandbox } from '../../apps/hemato-sandbox/src/bootstrap';
import { call, LocalServer, sha256, startSandbox } from './sandbox-helpers';

/**
 * The reference's own examples (shared/spec/hemato-ai-api.md), sent as its shell examples send them
 * (with `curl -X` corrected): JSON bodies with curl's form Content-Type, raw tokens without `Bearer`.
 */
describe('Hemato.AI sandbox: the reference examples', () => {
  let sb: RunningSandbox;
  let cb: LocalServer;
  let token: string;
  let studyId: string;
  const png = generateSmear({ width: 400, height: 300, format: 'png', seed: 11, parasites: true });
  const jpg = generateSmear({ width: 400, height: 300, format: 'jpeg', seed: 12 });
  const jpg2 = generateSmear({ width: 400, height: 300, format: 'jpeg', seed: 13 });

  beforeAll(async () => {
    sb = await startSandbox();
    cb = await new LocalServer().start();
  });
  afterAll(async () => {
    await sb.close();
    await cb.stop();
  });

  it('GET /heartbeat answers without auth, outside the envelope', async () => {
    const a = await call(sb.url, 'GET', '/heartbeat');
    expect(a.status).toBe(200);
    expect(Object.keys(a.body).sort()).toEqual(['delta', 'heartbeat', 'request_timestamp', 'version']);
    expect(typeof a.body.delta).toBe('string');
    expect(a.body.heartbeat).toMatch(/^[0-9a-f]{20}$/);
    expect(Math.abs(a.body.request_timestamp - Date.now() / 1000)).toBeLessThan(60);
  });

  it('POST /auth/login with the sha256 of the password, body piped as curl does (form Content-Type)', async () => {
    const body = JSON.stringify({ user: 'ali@example.com', pass_hash: sha256('hemato-sandbox') });
    const a = await call(sb.url, 'POST', '/auth/login', {
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(a.status).toBe(202);
    expect(a.body.status).toBe(202);
    const r = a.body.results;
    expect(r.login_timestamp).toMatch(/^\d{19}$/);
    expect(typeof r.token.HY_APP_AUTH_v1).toBe('string');
    expect(r.user).toEqual({
      email: 'ali@example.com',
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      screen_name: 'Ali',
      user_name: 'ali@example.com',
    });
    expect(a.body.debug_info).toEqual(
      expect.objectContaining({ delta: expect.any(String), version: expect.any(String) }),
    );
    token = r.token.HY_APP_AUTH_v1;
  });

  it('refuses a wrong password and a plain password in pass_hash', async () => {
    const wrong = await call(sb.url, 'POST', '/auth/login', {
      json: { user: 'ali@example.com', pass_hash: sha256('nope') },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.user_message).not.toBe('');
    const plain = await call(sb.url, 'POST', '/auth/login', {
      json: { user: 'ali@example.com', pass_hash: 'hemato-sandbox' },
    });
    expect(plain.status).toBe(400);
    expect(plain.body.error).toMatch(/sha256/);
  });

  it('POST /auth/hello and /auth/helo say the session token is accepted', async () => {
    for (const path of ['/auth/hello', '/auth/helo']) {
      const a = await call(sb.url, 'POST', path, {
        token,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(a.status).toBe(200);
      expect(a.body.results.valid).toBe(true);
      expect(a.body.results.method).toBe('session');
      expect(a.body.results.checks.every((c: { ok: boolean }) => c.ok)).toBe(true);
    }
  });

  it('answers 401 on every API endpoint but /heartbeat without a valid token', async () => {
    for (const [m, p] of [
      ['POST', '/pbs'],
      ['GET', '/pbs'],
      ['POST', '/pbs/x/files'],
      ['POST', '/pbs/x/tasks'],
      ['GET', '/pbs/x/status'],
      ['GET', '/pbs/x/report'],
    ]) {
      const none = await call(sb.url, m, p);
      expect([m, p, none.status]).toEqual([m, p, 401]);
      const junk = await call(sb.url, m, p, { token: 'not-a-token' });
      expect([m, p, junk.status]).toEqual([m, p, 401]);
    }
  });

  it('POST /pbs with tags gives a study id (201); a raw token and "Bearer" both work', async () => {
    const a = await call(sb.url, 'POST', '/pbs', {
      token,
      body: JSON.stringify({ tags: { patient_proxy_id: 'proxy-123' } }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(a.status).toBe(201);
    expect(a.body.status).toBe(201);
    expect(a.body.results.pbs_study_id).toMatch(/^[0-9a-f-]{36}$/);
    studyId = a.body.results.pbs_study_id;
    const bare = await call(sb.url, 'POST', '/pbs', { token: `Bearer ${token}` });
    expect(bare.status).toBe(201);
  });

  it('uploads with a Content-Type header (curl --data-binary)', async () => {
    const a = await call(sb.url, 'POST', `/pbs/${studyId}/files`, {
      token,
      body: png,
      headers: { 'content-type': 'image/png' },
    });
    expect(a.status).toBe(201);
    expect(a.body.results).toEqual({
      pbs_study_id: studyId,
      file_id: `sha224-i-${createHash('sha224').update(png).digest('hex')}`,
    });
  });

  it('uploads with file_name only (curl default form Content-Type falls through to the name)', async () => {
    const a = await call(sb.url, 'POST', `/pbs/${studyId}/files?file_name=some_file_name.jpg`, {
      token,
      body: jpg,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(a.status).toBe(201);
    expect(a.body.results.file_id).toBe(`sha224-i-${createHash('sha224').update(jpg).digest('hex')}`);
    expect(a.body.debug_info.type_from).toBe('file_name');
  });

  it('uploads with content_type only (no Content-Type header at all)', async () => {
    const a = await call(sb.url, 'POST', `/pbs/${studyId}/files?content_type=image/jpeg`, { token, body: jpg2 });
    expect(a.status).toBe(201);
    expect(a.body.debug_info.type_from).toBe('content_type');
  });

  it('POST /tasks with a callback: status moves to ready and the callback arrives with the reference body', async () => {
    const a = await call(sb.url, 'POST', `/pbs/${studyId}/tasks`, {
      token,
      body: JSON.stringify({
        diagnostic_tasks: ['pbs_v1'],
        callback_url: `${cb.url}/pbs_report_is_ready/${studyId}/sig`,
      }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(a.status).toBe(202);
    expect(a.body.results).toEqual({ pbs_study_id: studyId, tasks: ['pbs_v1'] });

    const first = await call(sb.url, 'GET', `/pbs/${studyId}/status`, { token });
    expect(first.status).toBe(200);
    expect(['pending', 'processing', 'ready']).toContain(first.body.results.report_status);
    expect(first.body.results.progress).toBeGreaterThanOrEqual(0);

    const [hit] = await cb.waitFor(`/pbs_report_is_ready/${studyId}/sig`);
    // The reference: "The body of the call will conform to `{"pbs_stody_id":"…", "report_status": "ready",
    // "progress": 1.0}`": the study is named `pbs_stody_id` (sic), and only so.
    expect(hit.body).toEqual(expect.objectContaining({ pbs_stody_id: studyId, report_status: 'ready', progress: 1.0 }));
    expect(hit.body).not.toHaveProperty('pbs_study_id');
    const status = await call(sb.url, 'GET', `/pbs/${studyId}/status`, { token });
    expect(status.body.results).toEqual({
      pbs_study_id: studyId,
      report_status: 'ready',
      progress: 1.0,
      progress_message: 'Reports are ready',
      report_version: 1,
    });
  });

  it('GET /report has the three levels, string values as in the example, and the sandbox notice', async () => {
    const a = await call(sb.url, 'GET', `/pbs/${studyId}/report`, { token });
    expect(a.status).toBe(200);
    const r = a.body.results;
    expect(r.pbs_study_id).toBe(studyId);
    expect(r.file_ids).toHaveLength(3);
    for (const key of ['rbc-density', 'platelet-density', 'blast-density']) {
      expect(r.feature_statistics[key]).toEqual({
        value: expect.stringMatching(/^\d+\.\d\d$/),
        unit: expect.any(String),
      });
    }
    const ring = r.morphological_findings['ring trophozoite'];
    expect(ring.count).toMatch(/^\d+$/);
    expect(ring.heat_map[0]).toEqual({
      center: [expect.any(Number), expect.any(Number)],
      radius: expect.any(Number),
      file_id: r.file_ids[0],
    });
    expect(r.diagnostic_report.differential_diagnosis[0]).toEqual(
      expect.objectContaining({
        'icd10-code': 'B50',
        score: 7,
        confidence: expect.stringMatching(/^0\.\d\d$/),
        'clinical-significance': 'D',
      }),
    );
    expect(r.pathology_report).toMatch(/NOT a diagnosis/);
    expect(r.sandbox_notice).toMatch(/sandbox/i);
  });

  it('unknown study → 404; wrong method → 405', async () => {
    expect((await call(sb.url, 'GET', '/pbs/00000000-0000-0000-0000-000000000000/status', { token })).status).toBe(404);
    // A malformed %-escape in the id names no study: 404 too, not a server error.
    expect((await call(sb.url, 'GET', '/pbs/%zz/status', { token })).status).toBe(404);
    expect((await call(sb.url, 'GET', `/pbs/${studyId}/tasks`, { token })).status).toBe(405);
  });
});
