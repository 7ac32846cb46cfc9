import { DeliveryStatus, DeliveryTarget, OrderStatus, SourceChannel, loadConfig, rootLogger } from '@hemato/common';
import { MllpClient, encodeFrame, readAck, readHeader, sendWithRetry } from '@hemato/hl7';
import { DeliveryEntity, OrderEntity, ReportEntity, createDataSource } from '@hemato/persistence';
import { PatientIdentityReader, PatientProxyService } from '@hemato/privacy';
import { testEnv } from '@hemato/testing';
import { Message } from 'node-hl7-client';
import type { DataSource } from 'typeorm';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { DEFAULT_JOB_OPTIONS, JobName, QueueName, queueOf, type OrderJobData } from '@hemato/common';
import { DeliverHl7Handler } from '../../apps/worker/src/delivery-hl7/deliver-hl7.handler';
import { DeliverHl7Service, type Hl7DeliveryResult } from '../../apps/worker/src/delivery-hl7/deliver-hl7.service';
import { migratedDatabase } from './support/gateway';
import { hostileReceiver } from './support/hostile-receiver';
import { scriptedReceiver } from './support/test-receiver';

rootLogger().level = process.env.TEST_LOG_LEVEL ?? 'silent';
const FAST = { attempts: 5, baseDelayMs: 20, maxDelayMs: 100 };
const ORU = (id: string) => `MSH|^~\\&|HB|HB|LIS|GENHOSP|20260101||ORU^R01^ORU_R01|${id}|P|2.5.1\rPID|1||X`;

describe('MLLP sender', () => {
  it('retries AE with the same control id until AA', async () => {
    const rx = await scriptedReceiver(['AE', 'AE', 'AA']);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 2000 });
    const out = await sendWithRetry(client, ORU('C-1'), 'C-1', FAST);
    client.close();
    await rx.server.close();
    expect(out.result).toBe('accepted');
    expect(out.attempts).toBe(3);
    expect(readAck(out.ack!.raw)?.ackedControlId).toBe('C-1');
    expect(rx.received.map((m) => readHeader(m)?.controlId)).toEqual(['C-1', 'C-1', 'C-1']);
  });

  it('retries after an ACK timeout and after a lost connection', async () => {
    const rx = await scriptedReceiver(['silent', 'drop', 'AA']);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 300 });
    const errors: Array<string | null> = [];
    const out = await sendWithRetry(client, ORU('C-2'), 'C-2', FAST, {
      onAttempt: (_n, o) => {
        errors.push(o.error);
      },
    });
    client.close();
    await rx.server.close();
    expect(out.result).toBe('accepted');
    expect(out.attempts).toBe(3);
    expect(errors[0]).toMatch(/no ACK within 300 ms/);
    expect(errors[1]).toMatch(/connection closed before the ACK/);
    expect(errors[2]).toBeNull();
  });

  it('takes a commit ACK (CA) for what it is: the application ACK that follows decides', async () => {
    // A receiver in enhanced mode answers CA (stored) and then AR or AA; our ORU asks for the application ACK.
    const answers: string[][] = [
      ['CA', 'AR'],
      ['CA', 'AA'],
    ];
    const rx = await hostileReceiver([
      (socket, id) => {
        for (const code of answers.shift() ?? []) {
          socket.write(
            encodeFrame(`MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ACK^R01^ACK|R${code}${id}|P|2.5.1\rMSA|${code}|${id}`),
          );
        }
      },
    ]);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 2000 });
    try {
      const rejected = await sendWithRetry(client, ORU('C-CA1'), 'C-CA1', FAST);
      expect(rejected).toMatchObject({ result: 'rejected', attempts: 1 });
      expect(rejected.ack!.code).toBe('AR');
      const accepted = await sendWithRetry(client, ORU('C-CA2'), 'C-CA2', FAST);
      expect(accepted).toMatchObject({ result: 'accepted', attempts: 1 });
      expect(accepted.ack!.code).toBe('AA');
    } finally {
      client.close();
      await rx.close();
    }
  });

  it("reads a receiver's ACK in the character set its MSH-18 names, and one with a byte order mark before MSH", async () => {
    // One ACK in 8859/1 (MSA-3 with an umlaut) whatever we sent, one from an engine writing UTF-8 with a BOM.
    const acks = [
      (id: string) =>
        encodeFrame(`MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ACK|A1|P|2.5.1|||||8859/1\rMSA|AA|${id}|Geprüft`, 'latin1'),
      (id: string) => encodeFrame(`\ufeffMSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ACK|A2|P|2.5.1\rMSA|AA|${id}`),
    ];
    const rx = await hostileReceiver([(socket, id) => socket.write(acks.shift()!(id))]);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 1000 });
    try {
      const latin1 = await sendWithRetry(client, ORU('C-L1'), 'C-L1', FAST);
      expect(latin1).toMatchObject({ result: 'accepted', attempts: 1 });
      expect(latin1.ack!.raw).toContain('MSA|AA|C-L1|Geprüft');
      const bom = await sendWithRetry(client, ORU('C-BOM'), 'C-BOM', FAST);
      expect(bom).toMatchObject({ result: 'accepted', attempts: 1 });
    } finally {
      client.close();
      await rx.close();
    }
  });

  it('gives up at once on AR', async () => {
    const rx = await scriptedReceiver(['AR']);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 2000 });
    const out = await sendWithRetry(client, ORU('C-3'), 'C-3', FAST);
    client.close();
    await rx.server.close();
    expect(out.result).toBe('rejected');
    expect(out.attempts).toBe(1);
    expect(rx.received).toHaveLength(1);
  });

  it('gives up after the attempts when the receiver is down', async () => {
    const client = new MllpClient({ host: '127.0.0.1', port: 1, ackTimeoutMs: 200 });
    const out = await sendWithRetry(client, ORU('C-4'), 'C-4', { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 });
    expect(out.result).toBe('gave_up');
    expect(out.attempts).toBe(3);
    expect(out.lastError).toMatch(/connect failed/);
  });
});

describe('HL7 result delivery (deliveries row → ORU^R01 → ACK)', () => {
  let ds: DataSource;
  let env: NodeJS.ProcessEnv;
  const PID = 'PID|1||MRN0042^^^GENHOSP^MR||TESTPATIENT^BOB||19800304|M';

  beforeAll(async () => {
    const url = await migratedDatabase();
    env = testEnv({ DATABASE_URL: url });
    ds = await createDataSource({ url }).initialize();
  });
  afterAll(async () => ds?.destroy());

  async function seed(
    version = 1,
    over: { pid?: string; pathology?: string; details?: Record<string, unknown>; sender?: string } = {},
  ) {
    const pid = over.pid ?? PID;
    const config = loadConfig(env);
    const proxy = await new PatientProxyService(config).resolve(ds.manager, {
      primary: { authority: 'GENHOSP', value: 'MRN0042' },
      identifiers: [{ authority: 'GENHOSP', value: 'MRN0042', type: 'MR' }],
      hl7Pid: pid,
    });
    const [inbound] = await ds.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, raw) VALUES ('hl7', $2, $1, 'MSH|...') RETURNING id`,
      [`IN-${Math.random()}`, over.sender ?? 'LIS|GENHOSP'],
    );
    const order = await ds.getRepository(OrderEntity).save({
      status: OrderStatus.Delivering,
      sourceChannel: SourceChannel.Hl7,
      placerOrderNumber: 'PL-42',
      fillerOrderNumber: `HB${Math.floor(Math.random() * 1e12)}`,
      patientProxyId: proxy.id,
      inboundMessageId: inbound.id,
      testSystem: 'LN',
      testCode: '34994-4',
      testDisplay: 'PBS',
      tasks: ['pbs_v1'],
      details: {
        collectionTime: '2026-01-01T11:30:00',
        alternateTest: { code: 'SMEAR', display: null, system: 'L' },
        processingId: 'T',
        orderingProvider: { id: '1234', family: 'WELBY', given: 'MARCUS', authority: 'NPI' },
        ...over.details,
      },
    });
    const report = await ds.getRepository(ReportEntity).save({
      orderId: order.id,
      version,
      hematoStudyId: 'study-1',
      raw: {
        pbs_study_id: 'study-1',
        file_ids: [],
        feature_statistics: { 'rbc-density': { value: '4.1', unit: '10*12/L' } },
        morphological_findings: { blast: { count: 2 } },
        diagnostic_report: { differential_diagnosis: [{ score: 5, confidence: 0.8, 'icd10-code': 'C91.0' }] },
        pathology_report: over.pathology ?? 'Blasts seen.',
      },
    });
    const delivery = await ds.getRepository(DeliveryEntity).save({
      orderId: order.id,
      reportId: report.id,
      target: DeliveryTarget.Hl7,
    });
    return { order, delivery };
  }

  function service(port: number, more: Record<string, string> = {}) {
    const config = loadConfig({
      ...env,
      ...more,
      HL7_RESULT_HOST: '127.0.0.1',
      HL7_RESULT_PORT: String(port),
      HL7_ACK_TIMEOUT_MS: '500',
    });
    return new DeliverHl7Service(ds, new PatientIdentityReader(config), config);
  }

  it('sends the ORU with the original PID, retries AE, and records acknowledged with attempts, ACK and control id', async () => {
    const rx = await scriptedReceiver(['AE', 'AA']);
    const { order, delivery } = await seed();
    const result = await service(rx.port).deliver(delivery.id, { finalAttempt: true, policy: FAST });
    await rx.server.close();
    expect(result).toMatchObject({
      deliveryId: delivery.id,
      orderId: order.id,
      status: 'acknowledged',
      outcome: 'AA',
      attempts: 2,
    });
    const row = await ds.getRepository(DeliveryEntity).findOneByOrFail({ id: delivery.id });
    expect(row.status).toBe(DeliveryStatus.Acknowledged);
    expect(row.attempts).toBe(2);
    expect(row.outcome).toBe('AA');
    expect(row.lastAttemptAt).not.toBeNull();
    const sent = new Message({ text: rx.received[1]! });
    expect(row.controlId).toBe(sent.get('MSH.10').toString());
    expect(readAck(row.response!)?.ackedControlId).toBe(row.controlId);
    expect(rx.received[0]!.split('\r')[1]).toBe(PID);
    expect(sent.get('MSH.5').toString()).toBe('LIS');
    expect(sent.get('MSH.6').toString()).toBe('GENHOSP');
    expect(sent.get('OBR.2').toString()).toBe('PL-42');
    expect(sent.get('OBR.3').toString()).toBe(order.fillerOrderNumber);
    expect(sent.get('OBR.25').toString()).toBe('F');
    // The ordering provider, echoed where result interfaces look for it.
    const segment = (name: string) =>
      rx.received[1]!.split('\r')
        .find((seg) => seg.startsWith(`${name}|`))!
        .split('|');
    expect(segment('OBR')[16]).toBe('1234^WELBY^MARCUS^^^^^^NPI');
    expect(segment('ORC')[12]).toBe('1234^WELBY^MARCUS^^^^^^NPI');
    // A training order (MSH-11 T) gets a training result, not a production one.
    expect(sent.get('MSH.11').toString()).toBe('T');
    // OBR-4's alternate coding, as the order gave it.
    expect([sent.get('OBR.4.4').toString(), sent.get('OBR.4.6').toString()]).toEqual(['SMEAR', 'L']);
    // The proxy id never reaches the hospital, the real identifier does.
    expect(rx.received[1]).toContain('MRN0042');
    expect(rx.received[1]).not.toMatch(/pp-[0-9a-f]{24}/);
  });

  it('routes each result by its receiver (MSH-5|MSH-6, the order sender) through HL7_RESULT_ROUTES, else to HL7_RESULT_HOST', async () => {
    // One bridge, two sites: site A's interface engine listens apart from the default one.
    const siteA = await scriptedReceiver(['AA', 'AA']);
    const fallback = await scriptedReceiver(['AA']);
    try {
      const routed = service(fallback.port, {
        HL7_RESULT_ROUTES: `LIS|SITE-A=127.0.0.1:${siteA.port},RIS|*=mllp://127.0.0.1:${siteA.port}`,
      });
      const a = await seed(1, { sender: 'LIS|SITE-A' });
      const ris = await seed(1, { sender: 'ris|anywhere' });
      const other = await seed(1, { sender: 'LIS|SITE-B' });
      for (const { delivery } of [a, ris, other]) {
        expect((await routed.deliver(delivery.id, { finalAttempt: true, policy: FAST })).status).toBe('acknowledged');
      }
      expect(siteA.received.map((m) => new Message({ text: m }).get('MSH.6').toString())).toEqual([
        'SITE-A',
        'anywhere',
      ]);
      expect(fallback.received.map((m) => new Message({ text: m }).get('MSH.6').toString())).toEqual(['SITE-B']);
      // Each delivery says where it went (the order page shows it).
      const where = async (id: string) => (await ds.getRepository(DeliveryEntity).findOneByOrFail({ id })).destination;
      expect(await where(a.delivery.id)).toBe(`mllp://127.0.0.1:${siteA.port}`);
      expect(await where(other.delivery.id)).toBe(`mllp://127.0.0.1:${fallback.port}`);
    } finally {
      await siteA.server.close();
      await fallback.server.close();
    }
  });

  it('fails a delivery visibly when no destination fits its receiver', async () => {
    const config = loadConfig({ ...env, HL7_RESULT_ROUTES: 'LIS|SITE-A=127.0.0.1:1' });
    const svc = new DeliverHl7Service(ds, new PatientIdentityReader(config), config);
    const { delivery } = await seed(1, { sender: 'LIS|SITE-B' });
    const result = await svc.deliver(delivery.id, { finalAttempt: true, policy: FAST });
    expect(result.status).toBe('failed');
    const row = await ds.getRepository(DeliveryEntity).findOneByOrFail({ id: delivery.id });
    expect(row.error).toMatch(/no HL7 result destination for LIS\|SITE-B/);
  });

  it('refuses an HL7_RESULT_ROUTES entry that is not APP|FACILITY=host:port', () => {
    for (const bad of ['LIS|A', 'LIS|A=host', 'LIS|A=host:99999', 'LIS|A=http://host:2575', '=host:2575']) {
      expect(() => loadConfig({ ...env, HL7_RESULT_ROUTES: bad }, ['hl7'])).toThrow(/HL7_RESULT_ROUTES/);
    }
    expect(() =>
      loadConfig({ ...env, HL7_RESULT_ROUTES: 'LIS|A=[::1]:2575,*|*=mllps://engine.example:6661' }, ['hl7']),
    ).not.toThrow();
  });

  it('gives the placer its order number back as the whole EI it was ordered with (ORC-2 / OBR-2)', async () => {
    const rx = await scriptedReceiver(['AA']);
    const { delivery } = await seed(1, {
      details: { placerAuthority: { namespaceId: 'EPIC', universalId: '1.2.840.9', universalIdType: 'ISO' } },
    });
    const result = await service(rx.port).deliver(delivery.id, { finalAttempt: true, policy: FAST });
    await rx.server.close();
    expect(result.status).toBe('acknowledged');
    const sent = new Message({ text: rx.received[0]! });
    expect(sent.get('ORC.2').toRaw()).toBe('PL-42^EPIC^1.2.840.9^ISO');
    expect(sent.get('OBR.2').toRaw()).toBe('PL-42^EPIC^1.2.840.9^ISO');
  });

  it("addresses the ORU to the order's sender as it named itself: MSH-5/6 with their universal ids", async () => {
    const rx = await scriptedReceiver(['AA']);
    const { delivery } = await seed(1, {
      details: {
        senderHd: { application: ['LIS', '2.16.840.1.113883.3.1', 'ISO'], facility: ['GENHOSP', '1.2.3.4.5', 'ISO'] },
      },
    });
    const result = await service(rx.port).deliver(delivery.id, { finalAttempt: true, policy: FAST });
    await rx.server.close();
    expect(result.status).toBe('acknowledged');
    const sent = new Message({ text: rx.received[0]! });
    expect(sent.get('MSH.5').toRaw()).toBe('LIS^2.16.840.1.113883.3.1^ISO');
    expect(sent.get('MSH.6').toRaw()).toBe('GENHOSP^1.2.3.4.5^ISO');
  });

  it('speaks ISO 8859-1 to a Latin-1 receiver (HL7_RESULT_CHARSET=8859/1): its bytes, and text it cannot say folded', async () => {
    const rx = await scriptedReceiver(['AA']);
    const { delivery } = await seed(1, {
      pid: 'PID|1||MRN0043^^^GENHOSP^MR||MÜLLER^JOSÉ||19800304|M',
      pathology: 'Rings ≥ 5 – “banana” forms, 3 μm; seen in Łódź',
    });
    const result = await service(rx.port, { HL7_RESULT_CHARSET: '8859/1' }).deliver(delivery.id, {
      finalAttempt: true,
      policy: FAST,
    });
    await rx.server.close();
    expect(result.status).toBe('acknowledged');
    const bytes = rx.frames[0]!;
    // Ü is one byte (0xDC) in Latin-1, two (0xC3 0x9C) in UTF-8.
    expect(bytes.includes(Buffer.from([0xdc]))).toBe(true);
    expect(bytes.includes(Buffer.from('Ü', 'utf8'))).toBe(false);
    const text = bytes.toString('latin1');
    const sent = new Message({ text });
    expect(sent.get('MSH.18').toString()).toBe('8859/1');
    expect(text.split('\r')[1]).toBe('PID|1||MRN0043^^^GENHOSP^MR||MÜLLER^JOSÉ||19800304|M');
    const report = text.split('\r').find((seg) => seg.includes('PATH-REPORT'))!;
    expect(report.split('|')[5]).toBe('Rings >= 5 - "banana" forms, 3 µm; seen in ?ódz');
  });

  it('codes its own observations in a table-0396 local coding system (99HAI, or HL7_RESULT_CODING_SYSTEM), ICD-10 as I10', async () => {
    const rx = await scriptedReceiver(['AA', 'AA']);
    const first = await seed(1);
    expect((await service(rx.port).deliver(first.delivery.id, { finalAttempt: true, policy: FAST })).status).toBe(
      'acknowledged',
    );
    const second = await seed(1);
    const configured = service(rx.port, { HL7_RESULT_CODING_SYSTEM: '99LAB' });
    expect((await configured.deliver(second.delivery.id, { finalAttempt: true, policy: FAST })).status).toBe(
      'acknowledged',
    );
    await rx.server.close();
    const codingSystems = (raw: string) =>
      raw
        .split('\r')
        .filter((seg) => seg.startsWith('OBX|'))
        .map((seg) => {
          const [code, , system] = seg.split('|')[3]!.split('^');
          return `${code}:${system}`;
        });
    const byDefault = codingSystems(rx.received[0]!);
    expect(byDefault.length).toBeGreaterThan(0);
    expect(byDefault.every((c) => c.endsWith(':99HAI'))).toBe(true);
    expect(codingSystems(rx.received[1]!).every((c) => c.endsWith(':99LAB'))).toBe(true);
    // The diagnosis value itself (OBX-5) stays ICD-10, coding system I10.
    const ddx = rx.received[0]!.split('\r').find(
      (seg) => seg.startsWith('OBX|') && seg.split('|')[3]!.startsWith('DDX^'),
    );
    expect(ddx!.split('|')[5]!.split('^')[2]).toBe('I10');
    // Anything that is not a local coding system of table 0396 is refused at start-up, naming the variable.
    expect(() => loadConfig({ ...env, HL7_RESULT_CODING_SYSTEM: 'HEMATO' })).toThrow(/HL7_RESULT_CODING_SYSTEM/);
  });

  it('marks the delivery failed, visibly, when the receiver answers AR', async () => {
    const rx = await scriptedReceiver(['AR']);
    const { delivery } = await seed(2);
    const result = await service(rx.port).deliver(delivery.id, { finalAttempt: false, policy: FAST });
    await rx.server.close();
    expect(result.status).toBe('failed');
    const row = await ds.getRepository(DeliveryEntity).findOneByOrFail({ id: delivery.id });
    expect(row).toMatchObject({ status: 'failed', attempts: 1, outcome: 'AR' });
    expect(row.error).toMatch(/AR/);
    // Version 2, but the receiver never acknowledged version 1: nothing to correct, so it goes as final.
    expect(new Message({ text: rx.received[0]! }).get('OBR.25').toString()).toBe('F');
  });

  it("records an AR whose text holds a NUL byte (a broken receiver's ACK): failed, visibly, with the ACK kept", async () => {
    // PostgreSQL text cannot hold U+0000: storing the ACK as received failed the attempt's update, so the AR
    // was never recorded and the job ran again and again.
    const rx = await hostileReceiver([
      (socket, id) =>
        socket.write(
          encodeFrame(`MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ACK|N1|P|2.5.1\rMSA|AR|${id}|Unknown\u0000patient`),
        ),
    ]);
    const { delivery } = await seed();
    try {
      const result = await service(rx.port).deliver(delivery.id, {
        finalAttempt: false,
        policy: FAST,
      });
      expect(result).toMatchObject({ status: 'failed', outcome: 'AR', attempts: 1 });
    } finally {
      await rx.close();
    }
    const row = await ds.getRepository(DeliveryEntity).findOneByOrFail({ id: delivery.id });
    expect(row).toMatchObject({ status: 'failed', attempts: 1, outcome: 'AR' });
    expect(readAck(row.response!)).toMatchObject({ code: 'AR', ackedControlId: row.controlId });
    expect(row.response).toContain('Unknown');
  });

  it("keeps a v2.3 receiver's words (MSA-3, ERR-1 code) on the delivery it gave up on, out of the job's error", async () => {
    // An AE each time: MSA-3 naming the patient (with a control character and an escaped line break), and the
    // v2.3 ERR-1, whose fourth component is the error code as code&text&system.
    const ae = (id: string) =>
      `MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ACK^R01|A-${id}|P|2.3\rMSA|AE|${id}|Bed 4\u0007 TESTPATIENT\\.br\\BOB\r` +
      'ERR|PID^1^5^101&Required field missing&HL70357';
    const rx = await scriptedReceiver([ae, ae, ae, ae]);
    const { delivery } = await seed();
    const policy = { attempts: 2, baseDelayMs: 10, maxDelayMs: 10 };
    try {
      const thrown = await service(rx.port)
        .deliver(delivery.id, { finalAttempt: false, policy })
        .then(
          () => null,
          (e: Error) => e,
        );
      // What BullMQ keeps as the job's failedReason and the worker logs: how the receiver answered, no more.
      expect(thrown?.message).toBe('ORU not acknowledged yet: receiver answered AE');
      const result = await service(rx.port).deliver(delivery.id, { finalAttempt: true, policy });
      expect(result).toMatchObject({ status: 'failed', outcome: 'AE', attempts: 4 });
    } finally {
      await rx.server.close();
    }
    const row = await ds.getRepository(DeliveryEntity).findOneByOrFail({ id: delivery.id });
    expect(row.error).toBe('gave up: receiver answered AE: Bed 4 TESTPATIENT BOB; 101 Required field missing');
  });

  it('leaves the delivery pending and throws (for the job to retry later) when retries run out before the last job attempt', async () => {
    const rx = await scriptedReceiver(['AE', 'AE', 'AE', 'AE', 'AE', 'AE']);
    const { delivery } = await seed();
    await expect(
      service(rx.port).deliver(delivery.id, {
        finalAttempt: false,
        policy: { attempts: 2, baseDelayMs: 10, maxDelayMs: 10 },
      }),
    ).rejects.toThrow(/not acknowledged yet/);
    let row = await ds.getRepository(DeliveryEntity).findOneByOrFail({ id: delivery.id });
    expect(row).toMatchObject({ status: 'pending', attempts: 2, outcome: 'AE' });
    const firstControlId = row.controlId;
    // The last job attempt gives up for good, still with the same control id.
    const result = await service(rx.port).deliver(delivery.id, {
      finalAttempt: true,
      policy: { attempts: 2, baseDelayMs: 10, maxDelayMs: 10 },
    });
    await rx.server.close();
    expect(result.status).toBe('failed');
    row = await ds.getRepository(DeliveryEntity).findOneByOrFail({ id: delivery.id });
    expect(row).toMatchObject({ status: 'failed', attempts: 4, controlId: firstControlId });
    expect(new Set(rx.received.map((m) => readHeader(m)?.controlId))).toEqual(new Set([firstControlId]));
  });

  it('runs as the deliveries.hl7 BullMQ job on the deliveries queue and returns how the delivery ended', async () => {
    expect(queueOf(JobName.DeliverHl7)).toBe(QueueName.Deliveries);
    const rx = await scriptedReceiver(['AE', 'AA']);
    const { order, delivery } = await seed();
    const connection = { url: env.REDIS_URL! };
    const prefix = env.QUEUE_PREFIX!;
    const queue = new Queue(QueueName.Deliveries, { connection, prefix });
    const events = new QueueEvents(QueueName.Deliveries, { connection, prefix });
    const handler = new DeliverHl7Handler(service(rx.port));
    const worker = new Worker<OrderJobData>(QueueName.Deliveries, (job) => handler.handle(job), { connection, prefix });
    try {
      await events.waitUntilReady();
      const job = await queue.add(
        JobName.DeliverHl7,
        { orderId: order.id, deliveryId: delivery.id },
        { ...DEFAULT_JOB_OPTIONS, jobId: `hl7-${delivery.id}` },
      );
      const result = (await job.waitUntilFinished(events, 30_000)) as Hl7DeliveryResult;
      expect(result).toMatchObject({ deliveryId: delivery.id, orderId: order.id, status: 'acknowledged', attempts: 2 });
      const row = await ds.getRepository(DeliveryEntity).findOneByOrFail({ id: delivery.id });
      expect(row.status).toBe('acknowledged');
    } finally {
      await worker.close();
      await events.close();
      await queue.obliterate({ force: true });
      await queue.close();
      await rx.server.close();
    }
  });
});
