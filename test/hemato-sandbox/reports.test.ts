import { generateSmearWithTruth } from '@hemato/testing';
import type { RunningSandbox } from '../../apps/hemato-sandbox/src/bootstrap';
import { call, createStudy, LocalServer, login, startSandbox, upload, waitDone } from './sandbox-helpers';

describe('Hemato.AI sandbox: reports computed from the pixels', () => {
  let sb: RunningSandbox;
  let cb: LocalServer;
  let token: string;
  const sick = generateSmearWithTruth({ width: 700, height: 500, format: 'jpeg', seed: 31, parasites: true });
  const clean = generateSmearWithTruth({ width: 700, height: 500, format: 'jpeg', seed: 32 });

  beforeAll(async () => {
    sb = await startSandbox({ SANDBOX_PROCESSING_MS: '200' });
    cb = await new LocalServer().start();
    token = await login(sb.url);
  });
  afterAll(async () => {
    await sb.close();
    await cb.stop();
  });

  async function reportFor(image: Buffer, extra?: { callback_url: string }) {
    const id = await createStudy(sb.url, token, { patient_proxy_id: 'px-1' });
    expect((await upload(sb.url, token, id, image, 'image/jpeg')).status).toBe(201);
    const t = await call(sb.url, 'POST', `/pbs/${id}/tasks`, {
      token,
      json: { diagnostic_tasks: ['pbs_v1'], ...extra },
    });
    expect(t.status).toBe(202);
    expect((await waitDone(sb.url, token, id)).body.results.report_status).toBe('ready');
    const r = await call(sb.url, 'GET', `/pbs/${id}/report`, { token });
    expect(r.status).toBe(200);
    return { id, report: r.body.results };
  }

  it('a smear with parasites gives ring trophozoites and B50; a clean one gives neither', async () => {
    const s = await reportFor(sick.image);
    const c = await reportFor(clean.image);
    const ring = s.report.morphological_findings['ring trophozoite'];
    expect(Number(ring.count)).toBe(sick.truth.parasites);
    expect(ring.heat_map).toHaveLength(sick.truth.parasites);
    // Every heat-map spot lies on a red cell the generator infected.
    for (const spot of ring.heat_map) {
      expect(spot.file_id).toBe(s.report.file_ids[0]);
      const near = sick.truth.parasiteCells.some(
        (cell) => Math.hypot(cell.x - spot.center[0], cell.y - spot.center[1]) <= sick.truth.rbcRadius,
      );
      expect(near).toBe(true);
      expect(spot.radius).toBeGreaterThan(sick.truth.rbcRadius * 0.7);
    }
    expect(
      s.report.diagnostic_report.differential_diagnosis.map((d: { 'icd10-code': string }) => d['icd10-code']),
    ).toEqual(['B50']);
    expect(s.report.pathology_report).toMatch(/Ring-form parasites were seen/);

    expect(c.report.morphological_findings['ring trophozoite']).toBeUndefined();
    expect(c.report.diagnostic_report.differential_diagnosis).toEqual([]);
    expect(c.report.pathology_report).toMatch(/No ring-form parasites were seen/);
    expect(c.report.feature_statistics.parasitemia.value).toBe('0.00');
    expect(Number(s.report.feature_statistics.parasitemia.value)).toBeGreaterThan(0);

    // Densities follow the counts: cells drawn / image megapixels.
    const mpx = (700 * 500) / 1e6;
    expect(Number(c.report.feature_statistics['rbc-density'].value)).toBeCloseTo(clean.truth.rbc / mpx, -1);
    expect(Number(c.report.feature_statistics['platelet-density'].value)).toBeCloseTo(clean.truth.platelets / mpx, -1);
  });

  it('is deterministic: the same image gives the same report', async () => {
    const a = await reportFor(sick.image);
    const b = await reportFor(sick.image);
    const strip = (r: Record<string, unknown>) => ({ ...r, pbs_study_id: undefined, created_at: undefined });
    expect(strip(b.report)).toEqual(strip(a.report));
  });

  it('a second /tasks run adds version 2; ?version=1 still answers version 1; an admin call adds version 3', async () => {
    const { id, report: v1 } = await reportFor(clean.image, { callback_url: `${cb.url}/rev/${'x'}` });
    expect(v1.version).toBe(1);
    expect(
      (await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } })).status,
    ).toBe(202);
    const done = await waitDone(sb.url, token, id);
    expect(done.body.results.report_version).toBe(2);
    const latest = await call(sb.url, 'GET', `/pbs/${id}/report`, { token });
    expect(latest.body.results.version).toBe(2);
    expect(latest.body.results.pathology_report).toMatch(/Revision 2/);
    const first = await call(sb.url, 'GET', `/pbs/${id}/report?version=1`, { token });
    expect(first.body.results.version).toBe(1);
    expect(first.body.results.pathology_report).not.toMatch(/Revision/);

    const rev = await call(sb.url, 'POST', `/_sandbox/pbs/${id}/revise`, {
      json: { pathology_report: 'Corrected by the pathologist (sandbox).' },
    });
    expect(rev.status).toBe(202);
    expect(rev.body.version).toBe(3);
    await waitDone(sb.url, token, id);
    const v3 = await call(sb.url, 'GET', `/pbs/${id}/report?version=3`, { token });
    expect(v3.body.results.pathology_report).toBe('Corrected by the pathologist (sandbox).');
    expect((await call(sb.url, 'GET', `/pbs/${id}/report?version=9`, { token })).status).toBe(404);
    // Each version was announced by a callback carrying its number.
    const hits = await cb.waitFor('/rev/', 3);
    expect(hits.map((h) => h.body.report_version)).toEqual([1, 2, 3]);
  });

  it('the report is not available before the run ends (409), and tasks need files (400)', async () => {
    const id = await createStudy(sb.url, token);
    const early = await call(sb.url, 'GET', `/pbs/${id}/report`, { token });
    expect(early.status).toBe(409);
    expect(early.body.error).toMatch(/report_status is pending/);
    expect(
      (await call(sb.url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } })).status,
    ).toBe(400);
  });

  it('status rises pending → processing → ready over SANDBOX_PROCESSING_MS', async () => {
    const slow = await startSandbox({ SANDBOX_PROCESSING_MS: '1500' });
    try {
      const t = await login(slow.url);
      const id = await createStudy(slow.url, t);
      await upload(slow.url, t, id, clean.image, 'image/jpeg');
      const before = await call(slow.url, 'GET', `/pbs/${id}/status`, { token: t });
      expect(before.body.results).toEqual(expect.objectContaining({ report_status: 'pending', progress: 0 }));
      await call(slow.url, 'POST', `/pbs/${id}/tasks`, { token: t, json: { diagnostic_tasks: ['pbs_v1'] } });
      const seen: Array<{ report_status: string; progress: number }> = [];
      for (;;) {
        const s = (await call(slow.url, 'GET', `/pbs/${id}/status`, { token: t })).body.results;
        seen.push(s);
        if (s.report_status === 'ready') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const order = ['pending', 'processing', 'ready'];
      const statuses = seen.map((s) => order.indexOf(s.report_status));
      expect(statuses).toEqual([...statuses].sort((a, b) => a - b));
      expect(statuses).toContain(1);
      const progress = seen.map((s) => s.progress);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(progress.at(-1)).toBe(1);
    } finally {
      await slow.close();
    }
  });
});

describe('Hemato.AI sandbox: workflow 2 (list_url)', () => {
  let sb: RunningSandbox;
  let host: LocalServer;
  let token: string;

  beforeAll(async () => {
    sb = await startSandbox({ SANDBOX_PROCESSING_MS: '100' });
    host = await new LocalServer().start();
    token = await login(sb.url);
  });
  afterAll(async () => {
    await sb.close();
    await host.stop();
  });

  it('downloads the list and its files, then calls back twice (files_checked, report_ready)', async () => {
    const a = generateSmearWithTruth({ width: 400, height: 300, format: 'png', seed: 41, parasites: true });
    const b = generateSmearWithTruth({ width: 400, height: 300, format: 'jpeg', seed: 42 });
    host.files.set('/files/a.png', { type: 'image/png', body: a.image });
    host.files.set('/files/b', { type: 'image/jpeg', body: b.image });
    host.files.set('/samples/1/files.json', {
      type: 'application/json',
      body: JSON.stringify({
        peripheral_blood_sample_id: 'sample-proxy-1',
        sample_collection_timestamp: '2021-01-02T15:04:05+07:00',
        clinical_tasks_requested: ['pbs_v1'],
        files: [`${host.url}/files/a.png?X-Amz-Signature=abc`, `${host.url}/files/b`],
        callback_url: `${host.url}/callbacks/1`,
      }),
    });
    const created = await call(sb.url, 'POST', '/pbs', {
      token,
      json: { list_url: `${host.url}/samples/1/files.json`, tasks: ['pbs_v1'] },
    });
    expect(created.status).toBe(201);
    // The reference's answer shape: the study id and its file ids (none yet: the list is fetched after).
    expect(created.body.results).toEqual({ pbs_study_id: expect.any(String), file_ids: [] });
    const id = created.body.results.pbs_study_id;
    const [checked, ready] = await host.waitFor('/callbacks/1', 2);
    expect(checked.body).toEqual(
      expect.objectContaining({
        pbs_stody_id: id,
        event: 'files_checked',
        sample_id: 'sample-proxy-1',
      }),
    );
    expect(checked.body.files).toHaveLength(2);
    expect(checked.body.files.every((f: { ok: boolean }) => f.ok)).toBe(true);
    expect(ready.body).toEqual(
      expect.objectContaining({ pbs_stody_id: id, event: 'report_ready', report_status: 'ready', progress: 1 }),
    );
    // Named as the reference's callback names the study (`pbs_stody_id`, sic), and only so.
    for (const cb of [checked, ready]) expect(cb.body).not.toHaveProperty('pbs_study_id');
    expect(ready.body.report_url).toContain(`/pbs/${id}/report`);
    const report = await call(sb.url, 'GET', `/pbs/${id}/report`, { token });
    expect(report.body.results.file_ids).toEqual(checked.body.file_ids);
    expect(Number(report.body.results.morphological_findings['ring trophozoite'].count)).toBe(a.truth.parasites);
  });

  it('fails the study with a user message when a listed file is missing or corrupt', async () => {
    host.files.set('/samples/2/files.json', {
      type: 'application/json',
      body: JSON.stringify({ files: [`${host.url}/files/missing.png`], callback_url: `${host.url}/callbacks/2` }),
    });
    const created = await call(sb.url, 'POST', '/pbs', {
      token,
      json: { list_url: `${host.url}/samples/2/files.json`, tasks: ['pbs_v1'] },
    });
    const id = created.body.results.pbs_study_id;
    const [hit] = await host.waitFor('/callbacks/2');
    expect(hit.body).toEqual(
      expect.objectContaining({ pbs_stody_id: id, event: 'files_checked', report_status: 'failed' }),
    );
    expect(hit.body.user_message).toMatch(/file 1 of 1.*HTTP 404/);
    const status = await call(sb.url, 'GET', `/pbs/${id}/status`, { token });
    expect(status.body.results.report_status).toBe('failed');
    expect(status.body.user_message).toMatch(/HTTP 404/);
  });

  it('refuses a list_url that is not https (outside loopback) and unknown tasks', async () => {
    const a = await call(sb.url, 'POST', '/pbs', {
      token,
      json: { list_url: 'http://example.com/x.json', tasks: ['pbs_v1'] },
    });
    expect(a.status).toBe(400);
    const b = await call(sb.url, 'POST', '/pbs', { token, json: { list_url: `${host.url}/x.json`, tasks: ['nope'] } });
    expect(b.status).toBe(400);
    expect(b.body.error).toMatch(/unknown diagnostic task/);
  });
});
