import { OrderStatus } from '@hemato/common';
import { buildCallbackUrl } from '@hemato/hemato-client';
import { MllpClient } from '@hemato/hl7';
import { OrderEntity, OrderEventEntity, ReportEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { startHematoProxy, type HematoProxy } from './support/hemato-proxy';

/**
 * Hemato.AI's report is external input: nothing in it can be trusted to be well-formed. A proxy stands in
 * front of the sandbox and rewrites the report answer (the sandbox only writes well-formed reports); the
 * hospital must get a well-formed ORU of what is usable, or the order fails visibly when nothing is.
 * Every case but the 404 failed before its fix (fetch or delivery failing in a loop, a 500 or 400 to a callback,
 * another study's report taken, READY not read as ready); the 404 pins down behaviour found right.
 */
describe('a report from Hemato.AI that is malformed or hostile', () => {
  let p: Pipeline;
  let proxy: HematoProxy;
  let rewrite: ((results: Record<string, any>) => unknown) | null = null;
  /** Rewrites the whole envelope of status answers (results and user_message). */
  let rewriteStatus: ((envelope: Record<string, any>) => unknown) | null = null;
  /** Answers the report request with this instead of asking the sandbox. */
  let rawReport: { status: number; body: string; headers?: Record<string, string> } | null = null;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 5, parasites: true });

  beforeAll(async () => {
    proxy = await startHematoProxy({
      answer: (req, res) => {
        if (!rawReport || req.method !== 'GET' || !/^\/pbs\/[^/]+\/report/.test(req.url ?? '')) return false;
        res.writeHead(rawReport.status, rawReport.headers ?? {});
        res.end(rawReport.body);
        return true;
      },
      rewriteJson: (req) => {
        if (req.method !== 'GET') return null;
        if (rewrite && /^\/pbs\/[^/]+\/report/.test(req.url ?? '')) {
          const change = rewrite;
          return (envelope) => ({ ...envelope, results: change(envelope.results) });
        }
        if (rewriteStatus && /^\/pbs\/[^/]+\/status/.test(req.url ?? '')) return rewriteStatus;
        return null;
      },
    });
    p = await startPipeline('hostile-report', { HEMATO_BASE_URL: proxy.url });
    proxy.target = p.sandbox.url;
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
    await proxy?.close();
  });
  afterEach(() => {
    rewrite = null;
    rewriteStatus = null;
    rawReport = null;
  });

  async function send(placer: string): Promise<void> {
    const ack = await client.send(
      sampleOrm({ controlId: `C-${placer}`, placer, images: [{ data: smear, subtype: 'PNG' }] }),
      `C-${placer}`,
    );
    expect(ack.code).toBe('AA');
  }

  it('keeps what is usable, leaves out what is malformed, and sends a well-formed ORU', async () => {
    rewrite = (r) => ({
      ...r,
      unknown_field: { anything: [1, 2, 3] },
      feature_statistics: {
        ...r.feature_statistics,
        'broken-null': null,
        'broken-object': { value: { v: 1 }, unit: 'g' },
        'unit-number': { value: '3', unit: 5 },
        'unit-delims': { value: '2.5', unit: 'a|b^c\r\nd' },
      },
      morphological_findings: {
        ...r.morphological_findings,
        'negative-count': { count: -3 },
        'null-finding': null,
      },
      diagnostic_report: {
        differential_diagnosis: [
          ...r.diagnostic_report.differential_diagnosis,
          null,
          { score: 1, confidence: 0.5 },
          { score: 1, confidence: 0.5, 'icd10-code': 'x|y^z' },
          { score: 1, confidence: 7, 'icd10-code': 'D50' },
          { score: '2', confidence: '0.4', 'icd10-code': 'D64.9', 'english-long': 42 },
        ],
      },
      pathology_report: 'First line\rsecond \u0000line with |^~\\& and \\F\\\rlone \ud800 surrogate',
    });
    await send('PL-HOSTILE');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-HOSTILE' }, OrderStatus.Completed, 60_000);
    const [oru] = await eventually(async () =>
      p.receiver.forPlacer('PL-HOSTILE').length ? p.receiver.forPlacer('PL-HOSTILE') : null,
    );
    expect(p.receiver.forPlacer('PL-HOSTILE')).toHaveLength(1);
    const segments = oru!.split('\r').filter((s) => s !== '');
    // Every segment is a segment: no line break, NUL or stray delimiter split one.
    for (const s of segments) expect(s).toMatch(/^(MSH|PID|ORC|OBR|NTE|OBX)\|/);
    expect(oru).not.toContain('\u0000');
    expect(oru).not.toMatch(/[\ud800-\udfff]/);
    const obx = segments.filter((s) => s.startsWith('OBX|')).map((s) => s.split('|'));
    const codes = obx.map((f) => f[3]!.split('^')[0]);
    expect(codes).toContain('FS-unit-number');
    expect(codes).toContain('FS-unit-delims');
    expect(codes).not.toContain('FS-broken-null');
    expect(codes).not.toContain('FS-broken-object');
    expect(codes).not.toContain('MF-negative-count');
    expect(codes).not.toContain('MF-null-finding');
    const ddx = obx.filter((f) => f[3]!.startsWith('DDX^')).map((f) => f[5]!.split('^')[0]);
    expect(ddx).toEqual(['B50', 'D64.9']);
    const path = obx.filter((f) => f[3]!.startsWith('PATH-REPORT^')).map((f) => f[5]);
    expect(path).toEqual([
      'First line',
      'second line with \\F\\\\S\\\\R\\\\E\\\\T\\ and \\E\\F\\E\\',
      'lone \ufffd surrogate',
    ]);

    // Stored as usable, and the timeline says what was left out.
    const [stored] = await p.db.manager.find(ReportEntity, { where: { orderId: order.id } });
    expect(JSON.stringify(stored!.raw)).not.toContain('\\u0000');
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id }, order: { id: 'ASC' } });
    const ready = events.find((e) => e.toStatus === OrderStatus.ReportReady);
    expect(ready!.detail.leftOut).toEqual(
      expect.arrayContaining([
        expect.stringContaining('broken-null'),
        expect.stringContaining('negative-count'),
        expect.stringContaining('X|Y^Z'),
      ]),
    );
  }, 120_000);

  it('a report with nothing usable fails the order with a clear reason and sends nothing', async () => {
    rewrite = (r) => ({
      pbs_study_id: r.pbs_study_id,
      file_ids: r.file_ids,
      feature_statistics: { a: null, b: { unit: 'g' } },
      morphological_findings: 'none',
      diagnostic_report: { differential_diagnosis: { not: 'a list' } },
      pathology_report: { text: 'not a string' },
    });
    await send('PL-EMPTY');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-EMPTY' }, OrderStatus.Failed, 60_000);
    expect(order.failureReason).toMatch(/no usable result/i);
    await new Promise((r) => setTimeout(r, 1500));
    expect(p.receiver.forPlacer('PL-EMPTY')).toHaveLength(0);
    const failed = await p.db.manager.findOneByOrFail(OrderEntity, { id: order.id });
    expect(failed.status).toBe(OrderStatus.Failed);
  }, 120_000);

  it('a study failed with an odd error payload fails the order with the message, cleaned', async () => {
    rewriteStatus = (e) => ({
      ...e,
      results: { ...e.results, report_status: 'failed', progress: 'abc', progress_message: { detail: 1 } },
      user_message: 'The smear\u0000 could not be read\ud800',
    });
    await send('PL-FAILED');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-FAILED' }, OrderStatus.Failed, 60_000);
    expect(order.failureReason).toBe('The smear could not be read\ufffd');
    expect(order.hematoUserMessage).toBe('The smear could not be read\ufffd');
    expect(p.receiver.forPlacer('PL-FAILED')).toHaveLength(0);
  }, 120_000);

  it('a callback with odd values in its body is accepted as the hint it is and the status re-read', async () => {
    // The status stays "processing" until the callback came: the order completes after it.
    let called = false;
    rewriteStatus = (e) =>
      called ? e : { ...e, results: { ...e.results, report_status: 'processing', progress: 0.5 } };
    await send('PL-CALLBACK');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-CALLBACK' }, OrderStatus.Processing, 60_000);
    const url = buildCallbackUrl(p.httpUrl, p.config.security.CALLBACK_SIGNING_SECRET, order.hematoStudyId!);
    called = true;
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        pbs_stody_id: order.hematoStudyId,
        report_status: 'ready\u0000' + 'x'.repeat(10_000),
        progress: { odd: true },
        event: ['report_ready'],
      }),
    });
    expect(res.status).toBe(202);
    await orderReaches(p.db, { placerOrderNumber: 'PL-CALLBACK' }, OrderStatus.Completed, 60_000);
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id, type: 'hemato_callback' } });
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) expect(String(e.detail.reportStatus ?? '').length).toBeLessThanOrEqual(100);
  }, 120_000);

  it('a 404 for the report after the status said ready fails the order, naming the answer', async () => {
    rawReport = {
      status: 404,
      body: JSON.stringify({ status: 404, error: 'not found' }),
      headers: { 'content-type': 'application/json' },
    };
    await send('PL-404');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-404' }, OrderStatus.Failed, 60_000);
    expect(order.failureReason).toMatch(/^Hemato\.AI GET \/pbs\/[^/]+\/report: 404 not found$/);
    expect(order.failedStep).toBe('orders.fetch-report');
    expect(p.receiver.forPlacer('PL-404')).toHaveLength(0);
  }, 120_000);

  it('a signed callback whose body is not JSON is still taken as the hint it is: 202, status re-read', async () => {
    let called = false;
    rewriteStatus = (e) =>
      called ? e : { ...e, results: { ...e.results, report_status: 'processing', progress: 0.5 } };
    await send('PL-CB-JSON');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-CB-JSON' }, OrderStatus.Processing, 60_000);
    const url = buildCallbackUrl(p.httpUrl, p.config.security.CALLBACK_SIGNING_SECRET, order.hematoStudyId!);
    called = true;
    for (const body of ['{"pbs_stody_id": "', '"ready"']) {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect(res.status).toBe(202);
    }
    await orderReaches(p.db, { placerOrderNumber: 'PL-CB-JSON' }, OrderStatus.Completed, 60_000);
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id, type: 'hemato_callback' } });
    // Ours (no body read) beside the sandbox's own callback.
    expect(events.filter((e) => e.detail.reportStatus === null)).toHaveLength(2);
  }, 120_000);

  it('a report that names another study is not taken: the order fails, nothing stored or sent', async () => {
    rewrite = (r) => ({ ...r, pbs_study_id: '00000000-0000-4000-8000-000000000000' });
    await send('PL-OTHER');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-OTHER' }, OrderStatus.Failed, 60_000);
    expect(order.failureReason).toMatch(/another study/);
    expect(order.failedStep).toBe('orders.fetch-report');
    expect(await p.db.manager.count(ReportEntity, { where: { orderId: order.id } })).toBe(0);
    expect(p.receiver.forPlacer('PL-OTHER')).toHaveLength(0);
  }, 120_000);

  it('a known status in another case (READY) is read as that status: the report is fetched and sent', async () => {
    rewriteStatus = (e) => ({
      ...e,
      results: { ...e.results, report_status: String(e.results.report_status).toUpperCase(), progress: 'NaN' },
    });
    await send('PL-UPPER');
    await orderReaches(p.db, { placerOrderNumber: 'PL-UPPER' }, OrderStatus.Completed, 60_000);
    expect(p.receiver.forPlacer('PL-UPPER')).toHaveLength(1);
  }, 120_000);
});
