import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  buildCallbackUrl,
  fileIdOf,
  parseCallbackBody,
  parseCallbackPath,
  verifyCallbackSignature,
  type HematoClient,
  type HematoRequestInfo,
} from '@hemato/hemato-client';
import { startLocalHemato, type LocalHematoServer } from './support/local-hemato-server';
import { jpegBytes, pngBytes, sessionClient } from './support/fixtures';

const SECRET = 'a-callback-signing-secret-of-32-chars-or-more';

/** A tiny HTTP endpoint standing in for the gateway: checks the callback URL's signature. */
async function startCallbackReceiver() {
  const received: { studyId?: string; verdict: string; event: ReturnType<typeof parseCallbackBody> }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const parts = parseCallbackPath(req.url ?? '');
      const verdict = parts
        ? verifyCallbackSignature(SECRET, parts.studyId, parts.expires, parts.signature)
        : undefined;
      const event = parseCallbackBody(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      received.push({ studyId: parts?.studyId, verdict: verdict?.ok ? 'ok' : (verdict?.reason ?? 'malformed'), event });
      res.writeHead(verdict?.ok ? 204 : 403).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 25));
}

describe('Hemato client: every endpoint against a local Hemato.AI', () => {
  let server: LocalHematoServer;
  let client: HematoClient;
  const seen: HematoRequestInfo[] = [];

  beforeEach(async () => {
    server = await startLocalHemato({ processingMs: 50 });
    seen.length = 0;
    client = sessionClient(server, { beforeRequest: (info) => void seen.push(info) });
  });
  afterEach(async () => {
    await client.close();
    await server.close();
  });

  it('heartbeat answers without auth and without an envelope', async () => {
    const hb = await client.heartbeat();
    expect(hb.heartbeat).toMatch(/^[0-9a-f]{20}$/);
    expect(hb.version).toBe('local.1');
    expect(hb.requestTimestamp).toBeGreaterThan(1_600_000_000);
    expect(server.count('POST', /^\/auth\/login$/)).toBe(0);
  });

  it('workflow 1: study, uploads, tasks with a signed callback, status, typed report and its revisions', async () => {
    const callbacks = await startCallbackReceiver();
    try {
      const { studyId } = await client.createStudy({ patient_proxy_id: 'PX-42' });
      expect(server.studies.get(studyId)!.tags).toEqual({ patient_proxy_id: 'PX-42' });
      const jpg = jpegBytes(50_000);
      const png = pngBytes(20_000);
      await client.uploadFile(studyId, jpg, 'image/jpeg');
      await client.uploadFile(studyId, png, 'image/png');

      const callbackUrl = buildCallbackUrl(callbacks.url + '/base', SECRET, studyId, { ttlSeconds: 600 });
      expect(callbackUrl).toMatch(new RegExp(`^${callbacks.url}/base/hemato/callback/${studyId}/\\d+/[\\w-]{43}$`));
      const tasks = await client.requestTasks(studyId, ['pbs_v1'], callbackUrl);
      expect(tasks).toEqual({ studyId, tasks: ['pbs_v1'] });

      await until(() => callbacks.received.length > 0);
      expect(callbacks.received).toEqual([
        { studyId, verdict: 'ok', event: { studyId, reportStatus: 'ready', progress: 1, event: undefined } },
      ]);

      const status = await client.getStatus(studyId);
      expect(status).toEqual({
        studyId,
        reportStatus: 'ready',
        progress: 1,
        progressMessage: 'Reports are ready',
        reportVersion: 1,
      });

      const report = await client.getReport(studyId);
      expect(report.studyId).toBe(studyId);
      expect(report.version).toBe(1);
      expect(report.fileIds.sort()).toEqual([fileIdOf(jpg), fileIdOf(png)].sort());
      expect(report.featureStatistics['rbc-density']).toEqual({ value: 4.52, rawValue: '4.52', unit: '10^12/L' });
      expect(report.featureStatistics['platelet-density']!.value).toBe(231);
      expect(report.featureStatistics['blast-density']).toEqual({ value: null, rawValue: 'x', unit: 'y' });
      expect(report.morphologicalFindings['ring trophozoite']).toEqual({
        count: 1,
        heatMap: [{ x: 435, y: 345, radius: 35 }],
      });
      expect(report.differentialDiagnosis).toEqual([
        {
          icd10Code: 'B50',
          score: 7,
          confidence: 0.95,
          clinicalSignificance: 'D',
          englishLong: 'Malaria Infection with Plasmodium Falciparum',
          englishShort: 'Malaria',
        },
      ]);
      expect(report.pathologyReport).toContain('ring trophozoites');

      server.revise(studyId);
      expect((await client.getReport(studyId)).version).toBe(2);
      const first = await client.getReport(studyId, 1);
      expect(first.version).toBe(1);
      expect(first.pathologyReport).toMatch(/^Revision 1/);
      await expect(client.getReport(studyId, 3)).rejects.toMatchObject({ status: 404 });
      await expect(client.getReport(studyId, 0)).rejects.toMatchObject({ kind: 'invalid_argument' });
    } finally {
      await callbacks.close();
    }
  });

  it('status before the tasks and a report not ready yet', async () => {
    const { studyId } = await client.createStudy();
    expect(await client.getStatus(studyId)).toMatchObject({ reportStatus: 'pending', progress: 0 });
    await client.uploadFile(studyId, jpegBytes(), 'jpg');
    server.processingMs = 60_000;
    await client.requestTasks(studyId, ['pbs_v1']);
    // progress arrives as the string "0.5": parsed to a number
    expect(await client.getStatus(studyId)).toMatchObject({ reportStatus: 'processing', progress: 0.5 });
    await expect(client.getReport(studyId)).rejects.toMatchObject({
      kind: 'http',
      status: 409,
      user_message: 'The report is not ready yet',
    });
    await expect(client.getStatus('no-such-study')).rejects.toMatchObject({ status: 404, error: 'no such study' });
  });

  it('workflow 2: submits a list URL; the service fetches the files it names', async () => {
    const files = { '/a.jpg': jpegBytes(10_000), '/b.png': pngBytes(8_000) };
    const list = createServer((req, res) => {
      if (req.url === '/list.json') {
        const base = `http://127.0.0.1:${(list.address() as AddressInfo).port}`;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            peripheral_blood_sample_id: 'S-1',
            clinical_tasks_requested: ['pbs_v1'],
            files: Object.keys(files).map((f) => base + f),
          }),
        );
        return;
      }
      const body = files[req.url as keyof typeof files];
      res.writeHead(body ? 200 : 404).end(body);
    });
    await new Promise<void>((r) => list.listen(0, '127.0.0.1', r));
    try {
      const listUrl = `http://127.0.0.1:${(list.address() as AddressInfo).port}/list.json`;
      const study = await client.submitFromList(listUrl, ['pbs_v1']);
      expect(study.fileIds.sort()).toEqual(Object.values(files).map(fileIdOf).sort());
      expect(seen.at(-1)).toMatchObject({
        method: 'POST',
        path: '/pbs',
        jsonBody: { list_url: listUrl, tasks: ['pbs_v1'] },
      });
      await until(() => server.studies.get(study.studyId)!.reports > 0);
      expect((await client.getReport(study.studyId)).fileIds.sort()).toEqual(study.fileIds.sort());
    } finally {
      await new Promise<void>((r) => list.close(() => r()));
    }
  });

  it('beforeRequest sees every call (never the token) and can refuse one before it is sent', async () => {
    const { studyId } = await client.createStudy({ patient_proxy_id: 'PX-1' });
    await client.uploadFile(studyId, jpegBytes(), 'jpg');
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual(['POST /pbs', `POST /pbs/${studyId}/files`]);
    expect(seen[0]).toMatchObject({
      tags: { patient_proxy_id: 'PX-1' },
      jsonBody: { tags: { patient_proxy_id: 'PX-1' } },
    });
    expect(seen[1]!.headers['content-type']).toBe('image/jpeg');
    expect(seen[1]!.url).toBe(`${server.url}/pbs/${studyId}/files?content_type=image%2Fjpeg`);
    for (const s of seen) expect(Object.keys(s.headers).map((h) => h.toLowerCase())).not.toContain('authorization');

    class PhiLeak extends Error {}
    const guarded = sessionClient(server, {
      beforeRequest: (info) => {
        if (info.tags && Object.keys(info.tags).some((k) => k !== 'patient_proxy_id')) throw new PhiLeak('PHI in tags');
      },
    });
    try {
      const before = server.log.length;
      await expect(guarded.createStudy({ patient_name: 'Jane Doe' })).rejects.toBeInstanceOf(PhiLeak);
      expect(server.log.length).toBe(before); // not even a login went out
      await expect(guarded.createStudy({ patient_proxy_id: 'PX-2' })).resolves.toHaveProperty('studyId');
    } finally {
      await guarded.close();
    }
  });
});
