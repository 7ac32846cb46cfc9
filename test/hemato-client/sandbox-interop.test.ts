/**
 * The client against the real sandbox (apps/hemato-sandbox): the same contract read by two
 * helpers, checked end to end so the two cannot drift apart unnoticed.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { zipSync } from 'fflate';
import { loadConfig } from '@hemato/common';
import {
  HematoClient,
  buildCallbackUrl,
  fileIdOf,
  parseCallbackBody,
  parseCallbackPath,
  verifyCallbackSignature,
} from '@hemato/hemato-client';
import { generateSmear } from '@hemato/testing';
import { bootstrapSandbox, type RunningSandbox } from '../../apps/hemato-sandbox/src/bootstrap';
import { FAST_RETRY } from './support/fixtures';

const SECRET = 'interop-callback-secret-at-least-32-chars';

// Keep test output readable: the sandbox and client log at info otherwise.
process.env.LOG_LEVEL ??= 'warn';

async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400 && !(await check()); i++) await new Promise((r) => setTimeout(r, 25));
}

describe('Hemato client against apps/hemato-sandbox', () => {
  let sandbox: RunningSandbox;
  let client: HematoClient;

  beforeAll(async () => {
    sandbox = await bootstrapSandbox(
      loadConfig({ HOST: '127.0.0.1', SANDBOX_PORT: '0', SANDBOX_PROCESSING_MS: '100', LOG_LEVEL: 'silent' }, [
        'core',
        'sandbox',
      ]),
    );
    client = new HematoClient({
      baseUrl: sandbox.url,
      region: 'dev',
      auth: { method: 'session', user: 'ali@example.com', password: 'hemato-sandbox' },
      retry: FAST_RETRY,
    });
  });
  afterAll(async () => {
    await client.close();
    await sandbox.close();
  });

  it('a lost answer to /tasks is not sent again (the run started once); findStudies finds a study by its tags', async () => {
    const faults = (body: unknown) =>
      fetch(`${sandbox.url}/_sandbox/faults`, {
        method: body === undefined ? 'DELETE' : 'POST',
        headers: { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const tag = `order-${Date.now()}`;
    const { studyId } = await client.createStudy({ bridge_order_id: tag });
    await client.uploadFile(studyId, generateSmear({ width: 128, height: 128, format: 'png', seed: 3 }), 'png');
    await faults({ drop_answer_next: 1, paths: ['/pbs/*/tasks'] });
    try {
      await expect(client.requestTasks(studyId, ['pbs_v1'])).rejects.toMatchObject({ kind: 'network', attempts: 1 });
    } finally {
      await faults(undefined);
    }
    const log = (await (await fetch(`${sandbox.url}/_sandbox/requests?path=/pbs/${studyId}/tasks`)).json()) as {
      requests: Array<{ status: number }>;
    };
    expect(log.requests.map((r) => r.status)).toEqual([202]);
    expect(['pending', 'processing', 'ready']).toContain((await client.getStatus(studyId)).reportStatus);

    expect(await client.findStudies({ bridge_order_id: tag })).toEqual([
      expect.objectContaining({ studyId, tags: { bridge_order_id: tag } }),
    ]);
    expect(await client.findStudies({ bridge_order_id: `${tag}-none` })).toEqual([]);
  });

  it('workflow 2: the tags sent with a list are kept on the study, which findStudies then finds', async () => {
    const tag = `list-order-${Date.now()}`;
    // Nothing listens on port 9: the download fails later, the study and its tags are made at once.
    const study = await client.submitFromList('http://127.0.0.1:9/list.json', ['pbs_v1'], { bridge_order_id: tag });
    expect(await client.findStudies({ bridge_order_id: tag })).toEqual([
      expect.objectContaining({ studyId: study.studyId, tags: { bridge_order_id: tag } }),
    ]);
  });

  it('runs workflow 1 with session auth: uploads, signed callback, typed report', async () => {
    const received: { ok: boolean; studyId?: string }[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const p = parseCallbackPath(req.url ?? '');
        const v = p && verifyCallbackSignature(SECRET, p.studyId, p.expires, p.signature);
        received.push({
          ok: !!v?.ok,
          studyId: parseCallbackBody(JSON.parse(Buffer.concat(chunks).toString())).studyId,
        });
        res.writeHead(v?.ok ? 204 : 403).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      expect((await client.heartbeat()).heartbeat).toBeTruthy();
      const me = await client.login();
      expect(me.email).toBe('ali@example.com');
      expect(await client.hello()).toMatchObject({ accepted: true });

      const { studyId } = await client.createStudy({ patient_proxy_id: 'px-interop' });
      const png = generateSmear({ width: 256, height: 256, format: 'png', seed: 7, parasites: true });
      const jpg = generateSmear({ width: 256, height: 256, format: 'jpeg', seed: 8 });
      const zip = Buffer.from(
        zipSync({ 'a.png': new Uint8Array(generateSmear({ width: 128, height: 128, format: 'png', seed: 9 })) }),
      );
      const ids = [
        (await client.uploadFile(studyId, png, 'png')).fileId,
        (await client.uploadFile(studyId, jpg, 'image/jpeg')).fileId,
        (await client.uploadFile(studyId, zip, 'zip')).fileId,
      ];
      expect(ids).toEqual([fileIdOf(png), fileIdOf(jpg), fileIdOf(zip)]);

      const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
      await client.requestTasks(studyId, ['pbs_v1'], buildCallbackUrl(base, SECRET, studyId, { ttlSeconds: 600 }));
      await expect(client.uploadFile(studyId, png, 'png')).rejects.toMatchObject({ status: 409 });
      await until(() => received.length > 0);
      expect(received).toEqual([{ ok: true, studyId }]);

      const status = await client.getStatus(studyId);
      expect(status).toMatchObject({ studyId, reportStatus: 'ready', progress: 1 });
      const report = await client.getReport(studyId);
      expect(report.studyId).toBe(studyId);
      expect(report.fileIds).toEqual(expect.arrayContaining(ids.slice(0, 2)));
      for (const f of Object.values(report.featureStatistics)) expect(typeof f.value).toBe('number');
      const ring = report.morphologicalFindings['ring trophozoite'];
      expect(ring?.count).toBeGreaterThan(0);
      expect(report.differentialDiagnosis.map((d) => d.icd10Code)).toContain('B50');
      expect(typeof report.differentialDiagnosis[0]!.confidence).toBe('number');
      expect(report.pathologyReport.length).toBeGreaterThan(0);
    } finally {
      await new Promise<void>((r) => receiver.close(() => r()));
    }
  });

  it('key auth, retries on injected 503 and 429, no retry of createStudy', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const reg = await fetch(`${sandbox.url}/_sandbox/organisations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        id: 'org-interop',
        subjects: ['svc-interop'],
        keys: [{ kid: 'kid-interop', public_key: publicKey.export({ type: 'spki', format: 'pem' }) }],
      }),
    });
    expect(reg.status).toBeLessThan(300);
    const retries: number[] = [];
    const keyed = new HematoClient({
      baseUrl: sandbox.url,
      region: 'dev',
      auth: {
        method: 'key',
        privateKey,
        keyId: 'kid-interop',
        issuer: 'org-interop',
        subject: 'svc-interop',
        alg: 'RS256',
      },
      retry: FAST_RETRY,
      onRetry: (e) => retries.push(e.status ?? 0),
    });
    const faults = (body: unknown) =>
      fetch(`${sandbox.url}/_sandbox/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    try {
      expect(await keyed.hello()).toMatchObject({ accepted: true });
      const { studyId } = await keyed.createStudy({ patient_proxy_id: 'px-key' });

      await faults({ fail_next: 2, error_status: 503, paths: ['/pbs/'] });
      await expect(keyed.getStatus(studyId)).resolves.toMatchObject({ studyId });
      expect(retries).toEqual([503, 503]);

      await faults({ rate_limit_next: 1, retry_after_s: 1, paths: ['/pbs/'] });
      await expect(keyed.getStatus(studyId)).resolves.toMatchObject({ studyId });
      expect(retries).toEqual([503, 503, 429]);

      await faults({ fail_next: 1, error_status: 503, paths: ['/pbs'] });
      await expect(keyed.createStudy()).rejects.toMatchObject({ status: 503 });
      expect(retries).toHaveLength(3);
    } finally {
      await fetch(`${sandbox.url}/_sandbox/faults`, { method: 'DELETE' });
      await keyed.close();
    }
  });
});
