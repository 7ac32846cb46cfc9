import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { OrderEntity, OrderEventEntity, ReportEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

/**
 * Hemato.AI's report is external input: nothing in it can be trusted to be well-formed. A proxy stands in
 * front of the sandbox and rewrites the report answer (the sandbox only writes well-formed reports); the
 * hospital must get a well-formed ORU of what is usable, or the order fails visibly when nothing is.
 */
describe('a report from Hemato.AI that is malformed or hostile', () => {
  let p: Pipeline;
  let proxy: http.Server;
  let target = '';
  let rewrite: ((results: Record<string, any>) => unknown) | null = null;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 5, parasites: true });

  beforeAll(async () => {
    proxy = http.createServer((req, res) => {
      const isReport = req.method === 'GET' && /^\/pbs\/[^/]+\/report/.test(req.url ?? '');
      const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (ur) => {
        if (!isReport || !rewrite || ur.statusCode !== 200) {
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        ur.on('data', (c: Buffer) => chunks.push(c));
        ur.on('end', () => {
          const envelope = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          envelope.results = rewrite!(envelope.results);
          const body = JSON.stringify(envelope);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(body);
        });
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    p = await startPipeline('hostile-report', { HEMATO_BASE_URL: proxyUrl });
    target = p.sandbox.url;
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
    await new Promise((r) => proxy?.close(r));
  });
  afterEach(() => {
    rewrite = null;
  });

  async function send(placer: string): Promise<void> {
    const ack = await client.send(
      sampleOrm({ controlId: `C-${placer}`, placer, images: [{ data: smear, subtype: 'PNG' }] }),
      `C-${placer}`,
    );
    expect(ack.code).toBe('AA');
  }
  const placerOf = (m: string) =>
    m
      .split('\r')
      .find((s) => s.startsWith('ORC|'))
      ?.split('|')[2]
      ?.split('^')[0];
  const orusFor = (placer: string) => p.receiver.messages.filter((m) => placerOf(m) === placer);

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
    const [oru] = await eventually(async () => (orusFor('PL-HOSTILE').length ? orusFor('PL-HOSTILE') : null));
    expect(orusFor('PL-HOSTILE')).toHaveLength(1);
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
    expect(orusFor('PL-EMPTY')).toHaveLength(0);
    const failed = await p.db.manager.findOneByOrFail(OrderEntity, { id: order.id });
    expect(failed.status).toBe(OrderStatus.Failed);
  }, 120_000);
});
