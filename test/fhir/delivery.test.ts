import { JobName, OrderStatus, QueueName, SourceChannel, loadConfig, type AppConfig } from '@hemato/common';
import type { ReportResults } from '@hemato/hemato-client';
import { buildReportResources, buildReportTransaction } from '@hemato/fhir';
import { OrderEntity } from '@hemato/persistence';
import { PatientIdentityReader, PatientProxyService, type PatientIdentity } from '@hemato/privacy';
import { TestFhirServer, fhirValidationErrors } from '@hemato/testing';
import type {
  DiagnosticReport,
  Device,
  Observation,
  Patient,
  Provenance,
  Resource,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { getQueueToken } from '@nestjs/bullmq';
import type { INestApplicationContext } from '@nestjs/common';
import type { Queue } from 'bullmq';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { bootstrapWorker } from '../../apps/worker/src/bootstrap';
import { DeliverFhirService, TransientDeliveryError } from '../../apps/worker/src/delivery-fhir/deliver-fhir.service';
import { fhirFetch, patient, startGateway } from './fhir-helpers';

function results(version: number): ReportResults {
  return {
    pbs_study_id: '4bb7fe9e-b608-4d68-adbe-8655c991f494',
    file_ids: ['sha224-i-db367ccd89fc39aa6ff9fff0cd9b11e6b5b6a41cff4bbb232bee7c93'],
    version,
    feature_statistics: {
      'rbc-density': { value: '4512.33', unit: 'cells/megapixel' },
      'platelet-density': { value: 210.5, unit: 'cells/megapixel' },
      parasitemia: { value: '2.10', unit: '%' },
    },
    morphological_findings: {
      'ring trophozoite': { count: '12', heat_map: [{ center: [435, 345], radius: 35 }] },
      blast: { count: 0 },
    },
    diagnostic_report: {
      differential_diagnosis: [
        {
          score: 7,
          confidence: '0.95',
          'clinical-significance': 'D',
          'icd10-code': 'B50',
          'english-long': 'Malaria Infection with Plasmodium Falciparum',
          'english-short': 'Malaria',
        },
        { score: 3, confidence: '0.40', 'icd10-code': 'D64.9', 'english-short': 'Anaemia, unspecified' },
      ],
    },
    pathology_report: `Ring trophozoites in red cells, a pattern seen in Plasmodium falciparum infection.${version > 1 ? ' Revised count.' : ''}`,
  };
}

describe('FHIR delivery of a report to the EHR (deliveries.fhir)', () => {
  let ehr: TestFhirServer;
  let gw: RunningGateway;
  let worker: INestApplicationContext;
  let ds: DataSource;
  let base: string;
  let queue: Queue;
  let pat: Patient & { id: string };
  let ehrSr: ServiceRequest & { id: string };
  let ehrTask: Task & { id: string };
  let orderId: string;
  let config: AppConfig;
  let env: NodeJS.ProcessEnv;
  let keyFile: string;

  beforeAll(async () => {
    const keys = await generateKeyPair('RS384', { extractable: true });
    const dir = mkdtempSync(path.join(tmpdir(), 'fhir-delivery-'));
    keyFile = path.join(dir, 'smart.pem');
    writeFileSync(keyFile, await exportPKCS8(keys.privateKey), { mode: 0o600 });
    ehr = await TestFhirServer.start({
      auth: {
        kind: 'smart',
        clients: [{ clientId: 'bridge', jwks: [{ ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'RS384' }] }],
      },
    });
    const started = await startGateway('fhirdelivery', {
      FHIR_EHR_BASE_URL: ehr.baseUrl,
      FHIR_EHR_AUTH: 'smart',
      FHIR_SMART_CLIENT_ID: 'bridge',
      FHIR_SMART_KEY_FILE: keyFile,
      FHIR_SMART_KEY_ID: 'k1',
      // HL7 orders name their MRN's assigning authority (PID-3 CX-4); the EHR knows it by this system.
      FHIR_PATIENT_IDENTIFIER_SYSTEMS: 'HOSP=urn:oid:1.2.3.4.mrn',
    });
    ({ gw, ds, base } = started);
    env = started.env;
    config = loadConfig(env);
    worker = await bootstrapWorker(config);
    queue = worker.get<Queue>(getQueueToken(QueueName.Deliveries));

    pat = await ehr.create(patient(undefined as never, 'MRN-DELIV') as unknown as Patient);
    ehrSr = await ehr.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:ehr:placer', value: 'PLAC-DELIV-1' }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
      subject: { reference: `Patient/${pat.id}` },
    });
    ehrTask = await ehr.create<Task>({
      resourceType: 'Task',
      status: 'requested',
      intent: 'order',
      basedOn: [{ reference: `ServiceRequest/${ehrSr.id}` }],
      for: { reference: `Patient/${pat.id}` },
    });
    // The EHR pushes its ServiceRequest to us; the Patient is read from the EHR.
    const r = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: ehrSr });
    expect(r.status).toBe(201);
    orderId = r.body.id;
  });
  afterAll(async () => {
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await worker?.close();
    await gw?.app.close();
    await ds?.destroy();
    await ehr?.close();
  });

  async function addReport(version: number): Promise<{ reportId: string; deliveryId: string }> {
    const [{ id: reportId }] = await ds.query(
      `INSERT INTO reports (order_id, version, hemato_study_id, raw) VALUES ($1, $2, $3, $4) RETURNING id`,
      [orderId, version, results(version).pbs_study_id, JSON.stringify(results(version))],
    );
    const [{ id: deliveryId }] = await ds.query(
      `INSERT INTO deliveries (order_id, report_id, target) VALUES ($1, $2, 'fhir') RETURNING id`,
      [orderId, reportId],
    );
    return { reportId, deliveryId };
  }

  async function deliveryDone(deliveryId: string): Promise<any> {
    for (;;) {
      const [row] = await ds.query(`SELECT status, attempts, outcome, response, error FROM deliveries WHERE id = $1`, [
        deliveryId,
      ]);
      if (row.status === 'acknowledged') return row;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const all = <T extends Resource>(type: T['resourceType']) => ehr.search<T>(type, { _count: '1000' });

  it('writes the DiagnosticReport, its Observations, Device and Provenance once, even when the first write is retried', async () => {
    const { deliveryId } = await addReport(1);
    ehr.failAfterCommit = 1; // the EHR commits the first transaction but the answer is lost (500)
    const job = await queue.add(JobName.DeliverFhir, { orderId, deliveryId });
    const row = await deliveryDone(deliveryId);
    expect((await queue.getJob(job.id!))?.attemptsMade).toBeGreaterThanOrEqual(1);
    expect(row.attempts).toBe(2);
    expect(row.outcome).toBe('200');
    expect(JSON.parse(row.response).type).toBe('transaction-response');
    expect(ehr.requests.filter((r) => r.method === 'POST' && r.path === '/').map((r) => r.status)).toEqual([500, 200]);

    const reports = await all<DiagnosticReport>('DiagnosticReport');
    expect(reports).toHaveLength(1);
    const dr = reports[0]!;
    expect(dr.status).toBe('final');
    expect(dr.subject).toEqual({ reference: `Patient/${pat.id}` });
    expect(dr.basedOn).toEqual([{ reference: `ServiceRequest/${ehrSr.id}` }]);
    expect(dr.code.coding?.[0]).toMatchObject({ system: 'http://loinc.org', code: '34994-4' });
    expect(dr.category?.map((c) => c.coding?.[0]?.code)).toEqual(['LAB', 'HM']);
    expect(dr.conclusionCode?.map((c) => c.coding?.[0])).toEqual([
      expect.objectContaining({ system: 'http://hl7.org/fhir/sid/icd-10', code: 'B50' }),
      expect.objectContaining({ system: 'http://hl7.org/fhir/sid/icd-10', code: 'D64.9' }),
    ]);
    expect(dr.conclusion).toContain('Ring trophozoites');
    expect(Buffer.from(dr.presentedForm![0]!.data!, 'base64').toString()).toContain('B50');

    const observations = await all<Observation>('Observation');
    expect(observations).toHaveLength(6); // 3 feature statistics + 2 findings + the narrative
    expect(dr.result?.map((r) => r.reference).sort()).toEqual(observations.map((o) => `Observation/${o.id}`).sort());
    const rbc = observations.find((o) => o.code.coding?.[0]?.code === 'rbc-density')!;
    expect(rbc.valueQuantity).toEqual({
      value: 4512.33,
      unit: 'cells/megapixel',
      system: 'http://unitsofmeasure.org',
      code: '{cells}/{megapixel}',
    });
    expect(observations.find((o) => o.code.coding?.[0]?.code === 'parasitemia')!.valueQuantity?.code).toBe('%');
    expect(observations.find((o) => o.code.coding?.[0]?.code === 'ring trophozoite')!.valueInteger).toBe(12);
    expect(observations.find((o) => o.code.coding?.[0]?.code === '18314-5')!.valueString).toContain(
      'Ring trophozoites',
    );

    const devices = await all<Device>('Device');
    expect(devices).toHaveLength(1);
    expect(devices[0]!.manufacturer).toBe('Hemato.AI');
    const provenances = await all<Provenance>('Provenance');
    expect(provenances).toHaveLength(1);
    expect(provenances[0]!.entity?.[0]?.what?.display).toContain('version 1');
    expect(provenances[0]!.target.map((t) => t.reference)).toContain(`DiagnosticReport/${dr.id}`);

    for (const r of [dr, ...observations, ...devices, ...provenances]) expect(fhirValidationErrors(r)).toEqual([]);

    // The EHR's Task for the ServiceRequest is completed and points at the report.
    const task = await ehr.repo.readResource<Task>('Task', ehrTask.id);
    expect(task.status).toBe('completed');
    expect(task.output?.[0]?.valueReference?.reference).toBe(`DiagnosticReport/${dr.id}`);
    // Every EHR call carried a SMART token.
    expect(ehr.tokensIssued.length).toBeGreaterThan(0);
  });

  it('a revision (version 2) corrects the same DiagnosticReport and Observations and adds a Provenance', async () => {
    const { deliveryId } = await addReport(2);
    await queue.add(JobName.DeliverFhir, { orderId, deliveryId });
    await deliveryDone(deliveryId);
    const reports = await all<DiagnosticReport>('DiagnosticReport');
    expect(reports).toHaveLength(1);
    expect(reports[0]!.status).toBe('corrected');
    expect(reports[0]!.conclusion).toContain('Revised count');
    expect(await all<Observation>('Observation')).toHaveLength(6);
    expect((await all<Observation>('Observation')).every((o) => o.status === 'corrected')).toBe(true);
    expect(await all<Provenance>('Provenance')).toHaveLength(2);
    expect(await all<Device>('Device')).toHaveLength(1);
  });

  it('keeps the EHR OperationOutcome on the delivery row when the EHR refuses the write for good (no retry)', async () => {
    const { deliveryId } = await addReport(3);
    ehr.rejectNextWrite(422, 'Subject does not match the ServiceRequest');
    await queue.add(JobName.DeliverFhir, { orderId, deliveryId });
    let row: any;
    for (;;) {
      [row] = await ds.query(`SELECT status, attempts, outcome, response, error FROM deliveries WHERE id = $1`, [
        deliveryId,
      ]);
      if (row.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(row.attempts).toBe(1);
    expect(row.outcome).toBe('422');
    expect(JSON.parse(row.response)).toMatchObject({
      resourceType: 'OperationOutcome',
      issue: [{ diagnostics: 'Subject does not match the ServiceRequest' }],
    });
    // Nothing changed on the EHR: still version 2.
    expect((await all<DiagnosticReport>('DiagnosticReport'))[0]!.conclusion).toContain('Revised count');
    expect(await all<Provenance>('Provenance')).toHaveLength(2);
    await ds.query(`DELETE FROM deliveries WHERE id = $1`, [deliveryId]);
    await ds.query(`DELETE FROM reports WHERE order_id = $1 AND version = 3`, [orderId]);
  });

  it('serves our Task and DiagnosticReport for EHRs that pull, and every resource validates', async () => {
    const task = await fhirFetch(`${base}/fhir/Task/${orderId}`);
    expect(task.body.status).toBe('completed');
    expect(task.body.output[0].valueReference.reference).toBe(`DiagnosticReport/${orderId}`);
    expect(fhirValidationErrors(task.body)).toEqual([]);

    const dr = await fhirFetch(`${base}/fhir/DiagnosticReport/${orderId}`);
    expect(dr.status).toBe(200);
    expect(dr.body.status).toBe('corrected');
    expect(dr.body.subject).toEqual({ reference: `Patient/${pat.id}` });
    expect(dr.body.contained.filter((c: Resource) => c.resourceType === 'Observation')).toHaveLength(6);
    expect(fhirValidationErrors(dr.body)).toEqual([]);

    const byOurs = await fhirFetch(`${base}/fhir/DiagnosticReport?based-on=ServiceRequest/${orderId}`);
    const byTheirs = await fhirFetch(`${base}/fhir/DiagnosticReport?based-on=ServiceRequest/${ehrSr.id}`);
    expect(byOurs.body.total).toBe(1);
    expect(byTheirs.body.total).toBe(1);
    expect(fhirValidationErrors(byOurs.body)).toEqual([]);
    const tasks = await fhirFetch(`${base}/fhir/Task?focus=ServiceRequest/${orderId}`);
    expect(tasks.body.entry[0].resource.id).toBe(orderId);
    const sr = await fhirFetch(`${base}/fhir/ServiceRequest/${orderId}`);
    expect(fhirValidationErrors(sr.body)).toEqual([]);
    expect((await fhirFetch(`${base}/fhir/DiagnosticReport/00000000-0000-4000-8000-000000000000`)).status).toBe(404);
  });

  it('the transaction Bundle validates, with a Patient reference or (as our read API has it) a logical subject', () => {
    for (const subject of [{ reference: 'Patient/1' }, { identifier: { system: 'urn:oid:1.2.3', value: 'MRN-1' } }]) {
      const bundle = buildReportTransaction(
        buildReportResources({
          orderId: '5f0c2a8e-0000-4000-8000-000000000001',
          fillerOrderNumber: 'HB261127000001',
          version: 1,
          results: results(1),
          issued: new Date(),
          effective: '2026-11-27T07:30:00Z',
          subject,
          basedOn: { identifier: { system: 'urn:ehr:placer', value: 'P-1' } },
        }),
      );
      expect(fhirValidationErrors(bundle)).toEqual([]);
    }
  });

  // ---- orders other than the first: each gets its own DiagnosticReport in the EHR ----

  let placerSeq = 0;

  /** A FHIR order for `pat` (pushed by the EHR like the first), in `delivering` with a report and a FHIR delivery row. */
  async function deliveringFhirOrder(): Promise<{ orderId: string; deliveryId: string; serviceRequestId: string }> {
    const sr = await ehr.create<ServiceRequest>({
      ...ehrSr,
      id: undefined,
      meta: undefined,
      identifier: [{ system: 'urn:ehr:placer', value: `PLAC-DELIV-X${++placerSeq}` }],
    } as ServiceRequest);
    const r = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    expect(r.status).toBe(201);
    // Let the worker's first step (no images: awaiting_images) pass before the order jumps to delivering.
    while ((await orderRow(r.body.id)).status === 'received') await new Promise((res) => setTimeout(res, 20));
    return { orderId: r.body.id, deliveryId: await reportAndDelivery(r.body.id), serviceRequestId: sr.id! };
  }

  /** An order that came in another way (HL7, the API): the identity as stored, or none; `delivering`, FHIR delivery row. */
  async function deliveringOrderFrom(
    channel: SourceChannel,
    identity: PatientIdentity | null,
  ): Promise<{ orderId: string; deliveryId: string }> {
    const proxy = identity ? await new PatientProxyService(config).resolve(ds.manager, identity) : null;
    const order = await ds.getRepository(OrderEntity).save({
      status: OrderStatus.Delivering,
      sourceChannel: channel,
      placerOrderNumber: `PL-${channel}-${++placerSeq}`,
      fillerOrderNumber: `HB${Date.now()}${placerSeq}`,
      patientProxyId: proxy?.id ?? null,
      testSystem: 'LN',
      testCode: '34994-4',
      testDisplay: 'PBS',
      tasks: ['pbs_v1'],
      details: {},
    });
    return { orderId: order.id, deliveryId: await reportAndDelivery(order.id) };
  }

  async function reportAndDelivery(order: string): Promise<string> {
    const [{ id: reportId }] = await ds.query(
      `INSERT INTO reports (order_id, version, hemato_study_id, raw) VALUES ($1, 1, $2, $3) RETURNING id`,
      [order, results(1).pbs_study_id, JSON.stringify(results(1))],
    );
    const [{ id: deliveryId }] = await ds.query(
      `INSERT INTO deliveries (order_id, report_id, target) VALUES ($1, $2, 'fhir') RETURNING id`,
      [order, reportId],
    );
    await ds.query(`UPDATE orders SET status = 'delivering' WHERE id = $1`, [order]);
    return deliveryId;
  }

  /** Waits until the delivery row is acknowledged or failed (the job has settled it). */
  async function deliverySettled(deliveryId: string): Promise<any> {
    for (;;) {
      const [row] = await ds.query(`SELECT status, attempts, outcome, response, error FROM deliveries WHERE id = $1`, [
        deliveryId,
      ]);
      if (row.status === 'acknowledged' || row.status === 'failed') return row;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function orderRow(id: string): Promise<{ status: string; failure_reason: string | null; completed: boolean }> {
    const [row] = await ds.query(`SELECT status, failure_reason FROM orders WHERE id = $1`, [id]);
    const [{ n }] = await ds.query(
      `SELECT count(*)::int AS n FROM order_events WHERE order_id = $1 AND to_status = 'completed'`,
      [id],
    );
    return { ...row, completed: n > 0 };
  }

  /**
   * The order once its delivery outcome is applied: the delivery row is settled by the job, the order
   * moves (completed / failed) just after, in its own transaction.
   */
  async function orderSettled(
    id: string,
  ): Promise<{ status: string; failure_reason: string | null; completed: boolean }> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const row = await orderRow(id);
      if (row.status !== 'delivering' || Date.now() > deadline) return row;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  const reportsOf = (order: string) =>
    ehr.search<DiagnosticReport>('DiagnosticReport', { identifier: `urn:hemato-bridge:diagnostic-report|${order}` });

  /** How many entries the transaction for a version-1 report has (each must get its answer). */
  const sentEntries = () =>
    buildReportTransaction(
      buildReportResources({
        orderId: '5f0c2a8e-0000-4000-8000-000000000001',
        fillerOrderNumber: 'HB1',
        version: 1,
        results: results(1),
        issued: new Date(),
        effective: new Date(),
        subject: { reference: 'Patient/1' },
      }),
    ).entry!.length;
  const created = (n: number) => Array.from({ length: n }, () => ({ response: { status: '201 Created' } }));

  it.each<[string, unknown, string, RegExp]>([
    [
      'an OperationOutcome',
      { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'transient', diagnostics: 'DB busy' }] },
      'application/fhir+json',
      /HTTP 200 but not with a transaction-response: an OperationOutcome \(transient: DB busy\)/,
    ],
    ['an HTML page', '<html><body>Please log in</body></html>', 'text/html', /HTTP 200 .*not JSON.*text\/html/],
    ['an empty body', '', 'application/fhir+json', /HTTP 200 .*empty body/],
    [
      'a Bundle of another type',
      { resourceType: 'Bundle', type: 'searchset', entry: [] },
      'application/fhir+json',
      /HTTP 200 .*Bundle of type searchset/,
    ],
    [
      'a transaction-response with fewer entries than sent',
      { resourceType: 'Bundle', type: 'transaction-response', entry: created(2) },
      'application/fhir+json',
      /2 entries for the \d+ sent/,
    ],
    [
      'a transaction-response with an entry that failed on the server (5xx)',
      {
        resourceType: 'Bundle',
        type: 'transaction-response',
        get entry() {
          const e = created(sentEntries());
          e[e.length - 2] = { response: { status: '503 Service Unavailable' } };
          return e;
        },
      },
      'application/fhir+json',
      /entry \d+ \(DiagnosticReport\): 503/,
    ],
  ])(
    'an HTTP 200 with %s is not an acknowledgement: the row keeps the error and the job retries',
    async (_what, body, contentType, error) => {
      const { orderId: id, deliveryId } = await deliveringFhirOrder();
      ehr.answerNextTransaction(200, body, contentType);
      const service = worker.get(DeliverFhirService);
      await expect(service.deliver(id, deliveryId)).rejects.toThrow(TransientDeliveryError);
      const [row] = await ds.query(`SELECT status, attempts, outcome, error FROM deliveries WHERE id = $1`, [
        deliveryId,
      ]);
      expect(row).toMatchObject({ status: 'pending', attempts: 1, outcome: '200' });
      expect(row.error).toMatch(error);
      expect((await orderRow(id)).status).toBe('delivering');
      await ds.query(`UPDATE orders SET status = 'failed' WHERE id = $1`, [id]); // settled: out of the reconciler's way
    },
  );

  it('an entry the EHR refused (4xx) inside an HTTP 200 transaction-response fails the delivery for good; the order is not completed', async () => {
    const { orderId: id, deliveryId } = await deliveringFhirOrder();
    // The stand-in EHR, like many, applies a transaction entry by entry: with two DiagnosticReports already
    // carrying our identifier, the conditional update of ours is refused (400) while the rest is written.
    for (let i = 0; i < 2; i++) {
      await ehr.create<DiagnosticReport>({
        resourceType: 'DiagnosticReport',
        identifier: [{ system: 'urn:hemato-bridge:diagnostic-report', value: id }],
        status: 'preliminary',
        code: { text: 'stray copy' },
      });
    }
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
    const row = await deliverySettled(deliveryId);
    expect(ehr.requests.filter((r) => r.method === 'POST' && r.path === '/').at(-1)?.status).toBe(200);
    expect(row.status).toBe('failed');
    expect(row.attempts).toBe(1);
    expect(row.outcome).toBe('200');
    expect(row.error).toMatch(/refused entry \d+ \(DiagnosticReport\): 400 .*multiple/);
    expect(JSON.parse(row.response).type).toBe('transaction-response');
    const order = await orderSettled(id);
    expect(order.status).toBe('failed');
    expect(order.completed).toBe(false);
    expect(order.failure_reason).toMatch(
      /Delivery to fhir failed: the EHR refused entry \d+ \(DiagnosticReport\): 400/,
    );
  });

  it.each<[number, Record<string, unknown>, RegExp]>([
    [
      422,
      {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'code-invalid', diagnostics: 'Unknown code system urn:x-local' }],
      },
      /HTTP 422.*code-invalid: Unknown code system urn:x-local/,
    ],
    [
      400,
      {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'invalid', details: { text: 'Bad bundle' } }],
      },
      /HTTP 400.*invalid: Bad bundle/,
    ],
    [
      412,
      {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'duplicate', diagnostics: 'Multiple resources match the condition' }],
      },
      /HTTP 412.*duplicate: Multiple resources match/,
    ],
  ])(
    'an EHR refusing the transaction with HTTP %i fails the delivery for good, saying what its OperationOutcome says',
    async (status, outcome, error) => {
      const { orderId: id, deliveryId } = await deliveringFhirOrder();
      ehr.answerNextTransaction(status, outcome, 'application/fhir+json');
      await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
      const row = await deliverySettled(deliveryId);
      expect(row).toMatchObject({ status: 'failed', attempts: 1, outcome: String(status) });
      expect(row.error).toMatch(error);
      expect(JSON.parse(row.response)).toMatchObject(outcome);
      const order = await orderSettled(id);
      expect(order.status).toBe('failed');
      expect(order.failure_reason).toMatch(error);
      expect(await reportsOf(id)).toHaveLength(0);
    },
  );

  it.each<[string, number, unknown]>([
    [
      'an HTTP 200 OperationOutcome',
      200,
      {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'processing', diagnostics: 'Patient DOE^JANE MRN-777 locked' }],
      },
    ],
    [
      'an HTTP 503 OperationOutcome',
      503,
      {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'transient', diagnostics: 'Patient DOE^JANE MRN-777 locked' }],
      },
    ],
    [
      'a refused entry of a transaction-response',
      200,
      {
        resourceType: 'Bundle',
        type: 'transaction-response',
        get entry() {
          const e = Array.from({ length: sentEntries() }, () => ({ response: { status: '201 Created' } }));
          e[0] = {
            response: {
              status: '409 Conflict',
              outcome: {
                resourceType: 'OperationOutcome',
                issue: [{ severity: 'error', code: 'conflict', diagnostics: 'Patient DOE^JANE MRN-777 locked' }],
              },
            } as never,
          };
          return e;
        },
      },
    ],
  ])(
    "keeps the EHR's own words (%s) on the delivery row, out of the job's error that is logged",
    async (_what, status, body) => {
      const { orderId: id, deliveryId } = await deliveringFhirOrder();
      ehr.answerNextTransaction(status, body, 'application/fhir+json');
      const thrown = await worker
        .get(DeliverFhirService)
        .deliver(id, deliveryId)
        .then(
          () => null,
          (e: Error) => e,
        );
      expect(thrown).toBeInstanceOf(TransientDeliveryError);
      expect(thrown!.message).toMatch(new RegExp(`EHR write failed \\(${status}\\)`));
      expect(thrown!.message).not.toMatch(/DOE|MRN-777/);
      const [row] = await ds.query(`SELECT status, error FROM deliveries WHERE id = $1`, [deliveryId]);
      expect(row.status).toBe('pending');
      expect(row.error).toContain('Patient DOE^JANE MRN-777 locked');
      await ds.query(`UPDATE orders SET status = 'failed' WHERE id = $1`, [id]); // settled: out of the reconciler's way
    },
  );

  it("an EHR failing every attempt (503): once the job's attempts are spent the order fails with the EHR's words", async () => {
    const { orderId: id, deliveryId } = await deliveringFhirOrder();
    ehr.answerNextTransaction(
      503,
      {
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'transient', diagnostics: 'Index rebuild under way' }],
      },
      'application/fhir+json',
    );
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId }, { attempts: 1 });
    const row = await deliverySettled(deliveryId);
    expect(row).toMatchObject({ status: 'failed', attempts: 1, outcome: '503' });
    expect(row.error).toMatch(/HTTP 503.*transient: Index rebuild under way/);
    const order = await orderSettled(id);
    expect(order.status).toBe('failed');
    expect(order.failure_reason).toMatch(/Delivery to fhir failed: .*HTTP 503.*transient: Index rebuild under way/);
  });

  it('an EHR answering 429 with Retry-After is sent the report again no sooner than it asked, then acknowledges', async () => {
    const { orderId: id, deliveryId } = await deliveringFhirOrder();
    const posts = () => ehr.requests.filter((r) => r.method === 'POST' && r.path === '/');
    const before = posts().length;
    // Longer than the queue's first backoff step (2 s): a retry at the backoff would come too early.
    ehr.answerNextTransaction(
      429,
      { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled', diagnostics: 'slow down' }] },
      'application/fhir+json',
      { 'retry-after': '5' },
    );
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
    const row = await deliverySettled(deliveryId);
    expect(row).toMatchObject({ status: 'acknowledged', attempts: 2 });
    const [throttled, retried] = posts().slice(before);
    expect(throttled!.status).toBe(429);
    expect(retried!.status).toBe(200);
    expect(retried!.at - throttled!.at).toBeGreaterThanOrEqual(5000);
    expect(await reportsOf(id)).toHaveLength(1);
    expect((await orderSettled(id)).status).toBe('completed');
  }, 30_000);

  it('a revision that no longer has a finding retracts its Observation in the EHR (entered-in-error), never leaves it final', async () => {
    const { orderId: id, deliveryId } = await deliveringFhirOrder();
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
    expect((await deliverySettled(deliveryId)).status).toBe('acknowledged');
    const blastOf = async () =>
      (
        await ehr.search<Observation>('Observation', {
          identifier: `urn:hemato-bridge:observation|${id}/finding/blast`,
        })
      )[0];
    expect((await blastOf())!.status).toBe('final');

    // Version 2 from Hemato.AI: the blast finding is gone, the parasitemia statistic too.
    const v2 = results(2);
    delete v2.morphological_findings.blast;
    delete v2.feature_statistics.parasitemia;
    const [{ id: reportId }] = await ds.query(
      `INSERT INTO reports (order_id, version, hemato_study_id, raw) VALUES ($1, 2, $2, $3) RETURNING id`,
      [id, v2.pbs_study_id, JSON.stringify(v2)],
    );
    const [{ id: delivery2 }] = await ds.query(
      `INSERT INTO deliveries (order_id, report_id, target) VALUES ($1, $2, 'fhir') RETURNING id`,
      [id, reportId],
    );
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId: delivery2 });
    expect((await deliverySettled(delivery2)).status).toBe('acknowledged');

    const [dr] = await reportsOf(id);
    expect(dr!.status).toBe('corrected');
    expect(dr!.result).toHaveLength(4);
    // Every Observation of this order in the EHR: those the corrected report lists are corrected, the rest retracted.
    const listed = new Set(dr!.result!.map((r) => r.reference));
    const mine = (await all<Observation>('Observation')).filter((o) =>
      o.identifier?.some((i) => i.value?.startsWith(`${id}/`)),
    );
    expect(mine).toHaveLength(6);
    for (const o of mine) {
      expect(o.status).toBe(listed.has(`Observation/${o.id}`) ? 'corrected' : 'entered-in-error');
      expect(fhirValidationErrors(o)).toEqual([]);
    }
    expect((await blastOf())!.status).toBe('entered-in-error');
    // Version 2's Provenance names what it retracted too, not only what it reports.
    const provenance = (await all<Provenance>('Provenance')).find((p) =>
      p.meta?.tag?.some((t) => t.code === `${id}-v2`),
    );
    expect(provenance!.target.map((t) => t.reference)).toContain(`Observation/${(await blastOf())!.id}`);
    // Sent again (a retry), nothing changes and nothing is duplicated.
    await ds.query(`UPDATE deliveries SET status = 'pending' WHERE id = $1`, [delivery2]);
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId: delivery2 });
    expect((await deliverySettled(delivery2)).status).toBe('acknowledged');
    expect(
      (await all<Observation>('Observation')).filter((o) => o.identifier?.some((i) => i.value?.startsWith(`${id}/`))),
    ).toHaveLength(6);
  });

  it('an EHR answering 409 Conflict (two writers at once) is sent the report again, not failed for good', async () => {
    const { orderId: id, deliveryId } = await deliveringFhirOrder();
    // HAPI's answer when another transaction updated the same resources meanwhile.
    ehr.rejectNextWrite(
      409,
      'HAPI-0550: version constraint failure: two clients updated the same resource',
      'conflict',
    );
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
    const row = await deliverySettled(deliveryId);
    expect(row).toMatchObject({ status: 'acknowledged', attempts: 2, error: null });
    expect(
      ehr.requests
        .filter((r) => r.method === 'POST' && r.path === '/')
        .slice(-2)
        .map((r) => r.status),
    ).toEqual([409, 200]);
    expect(await reportsOf(id)).toHaveLength(1);
    expect((await orderSettled(id)).status).toBe('completed');
  });

  it("completes the EHR's Task without overwriting a change made to it in the EHR meanwhile (If-Match, 412, read again)", async () => {
    const { orderId: id, deliveryId, serviceRequestId } = await deliveringFhirOrder();
    const task = await ehr.create<Task>({
      resourceType: 'Task',
      status: 'requested',
      intent: 'order',
      basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    });
    // A ward clerk annotates the Task between our read of it and our update.
    ehr.onNextUpdate('Task', async (taskId) => {
      const current = await ehr.repo.readResource<Task>('Task', taskId);
      await ehr.repo.updateResource<Task>({ ...current, note: [{ text: 'Specimen relabelled on the ward' }] });
    });
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
    expect((await deliverySettled(deliveryId)).status).toBe('acknowledged');
    const done = await ehr.repo.readResource<Task>('Task', task.id!);
    expect(done.status).toBe('completed');
    expect(done.note).toEqual([{ text: 'Specimen relabelled on the ward' }]);
    expect(done.output?.map((o) => o.valueReference?.reference)).toEqual([
      expect.stringMatching(/^DiagnosticReport\//),
    ]);
    // The first update was refused as stale (412), the second, on the version read again, went through.
    expect(
      ehr.requests.filter((r) => r.method === 'PUT' && r.path === `/Task/${task.id}`).map((r) => r.status),
    ).toEqual([412, 200]);
  });

  it("completes the EHR's Task when the EHR's transaction-response names no locations (the report is found by its identifier)", async () => {
    const { orderId: id, deliveryId, serviceRequestId } = await deliveringFhirOrder();
    const task = await ehr.create<Task>({
      resourceType: 'Task',
      status: 'requested',
      intent: 'order',
      basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }],
    });
    // Everything is written, but the answer is bare: each entry has its status only (allowed for an update
    // that created nothing new, and what some EHRs send with Prefer: return=minimal).
    ehr.editNextTransactionResponse((b) => ({
      ...b,
      entry: (b.entry ?? []).map((e) => ({ response: { status: e.response!.status } })),
    }));
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
    expect((await deliverySettled(deliveryId)).status).toBe('acknowledged');
    const [dr] = await reportsOf(id);
    expect(dr).toBeDefined();
    const done = await ehr.repo.readResource<Task>('Task', task.id!);
    expect(done.status).toBe('completed');
    expect(done.output?.map((o) => o.valueReference?.reference)).toEqual([`DiagnosticReport/${dr!.id}`]);
  });

  it('a report for an order without an EHR Patient reference (HL7) goes to the Patient found by its MRN', async () => {
    const { orderId: id, deliveryId } = await deliveringOrderFrom(SourceChannel.Hl7, {
      primary: { authority: 'HOSP', value: 'MRN-DELIV' },
      identifiers: [{ authority: 'HOSP', value: 'MRN-DELIV', type: 'MR' }],
      hl7Pid: 'PID|1||MRN-DELIV^^^HOSP^MR||Test^Pat',
    });
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
    const row = await deliverySettled(deliveryId);
    expect(row).toMatchObject({ status: 'acknowledged', error: null });
    const [dr] = await reportsOf(id);
    expect(dr!.subject).toEqual({ reference: `Patient/${pat.id}` });
    expect(fhirValidationErrors(dr!)).toEqual([]);
    const obs = await Promise.all(
      dr!.result!.map((r) => ehr.repo.readResource<Observation>('Observation', r.reference!.split('/')[1]!)),
    );
    expect(obs).toHaveLength(6);
    for (const o of obs) expect(o.subject).toEqual({ reference: `Patient/${pat.id}` });
    expect((await orderSettled(id)).status).toBe('completed');
  });

  it.each<[string, PatientIdentity | null, RegExp]>([
    ['no patient at all (an API order)', null, /no patient identity/i],
    [
      'an MRN whose assigning authority has no FHIR system',
      {
        primary: { authority: 'CLINIC9', value: 'MRN-DELIV' },
        identifiers: [{ authority: 'CLINIC9', value: 'MRN-DELIV', type: 'MR' }],
      },
      /CLINIC9.*FHIR_PATIENT_IDENTIFIER_SYSTEMS/,
    ],
    [
      'an MRN no Patient in the EHR has',
      {
        primary: { authority: 'HOSP', value: 'MRN-NOBODY' },
        identifiers: [{ authority: 'HOSP', value: 'MRN-NOBODY', type: 'MR' }],
      },
      /No Patient in the EHR has the order's identifier \(urn:oid:1\.2\.3\.4\.mrn\)/,
    ],
    [
      'an MRN two Patients in the EHR have',
      {
        primary: { authority: 'HOSP', value: 'MRN-TWIN' },
        identifiers: [{ authority: 'HOSP', value: 'MRN-TWIN', type: 'MR' }],
      },
      /2 Patients in the EHR have the order's identifier/,
    ],
  ])('a report for %s is not sent: the delivery fails saying why', async (_what, identity, error) => {
    if (identity?.primary.value === 'MRN-TWIN') {
      for (let i = 0; i < 2; i++) {
        await ehr.create({ ...patient('twin', 'MRN-TWIN'), id: undefined } as unknown as Patient);
      }
    }
    const { orderId: id, deliveryId } = await deliveringOrderFrom(
      identity ? SourceChannel.Hl7 : SourceChannel.Api,
      identity,
    );
    const posts = ehr.requests.filter((r) => r.method === 'POST' && r.path === '/').length;
    await queue.add(JobName.DeliverFhir, { orderId: id, deliveryId });
    const row = await deliverySettled(deliveryId);
    expect(row.status).toBe('failed');
    expect(row.attempts).toBe(1);
    expect(row.error).toMatch(error);
    // Never the MRN itself in the error (the dashboard shows it unmasked).
    expect(row.error).not.toMatch(/MRN-/);
    expect(ehr.requests.filter((r) => r.method === 'POST' && r.path === '/')).toHaveLength(posts);
    expect(await reportsOf(id)).toEqual([]);
    const order = await orderSettled(id);
    expect(order.status).toBe('failed');
    expect(order.completed).toBe(false);
  });

  it('does not follow a redirect from the EHR: the report goes nowhere else, and the delivery fails saying so', async () => {
    const elsewhere: string[] = [];
    const other: Server = createServer((req, res) => {
      elsewhere.push(`${req.method} ${req.url}`);
      req.resume();
      res
        .writeHead(200, { 'content-type': 'application/fhir+json' })
        .end('{"resourceType":"Bundle","type":"transaction-response"}');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const otherPort = (other.address() as AddressInfo).port;
    const redirecting: Server = createServer((req, res) => {
      req.resume();
      res.writeHead(Number(req.url!.split('/')[1]), { location: `http://localhost:${otherPort}/fhir/R4` }).end();
    });
    await new Promise<void>((r) => redirecting.listen(0, '127.0.0.1', r));
    const at = `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}`;
    try {
      for (const code of [307, 308, 302]) {
        const { orderId: id, deliveryId } = await deliveringFhirOrder();
        const cfg = loadConfig({ ...env, FHIR_EHR_BASE_URL: `${at}/${code}/fhir/R4`, FHIR_EHR_AUTH: 'none' });
        const outcome = await new DeliverFhirService(ds, worker.get(PatientIdentityReader), cfg)
          .deliver(id, deliveryId)
          .catch((e: Error) => e);
        expect(outcome).toBe('failed');
        const [row] = await ds.query(`SELECT status, outcome, error FROM deliveries WHERE id = $1`, [deliveryId]);
        expect(row).toMatchObject({ status: 'failed', outcome: String(code) });
        expect(row.error).toMatch(
          new RegExp(`HTTP ${code}, a redirect to http://localhost:${otherPort}: not followed`),
        );
        await ds.query(`UPDATE orders SET status = 'failed' WHERE id = $1`, [id]);
      }
      expect(elsewhere).toEqual([]);
    } finally {
      await new Promise<void>((r) => redirecting.close(() => r()));
      await new Promise<void>((r) => other.close(() => r()));
    }
  });

  it('an EHR that never answers times the delivery out (FHIR_EHR_TIMEOUT_MS): a retryable failure that says so', async () => {
    const sockets = new Set<import('node:net').Socket>();
    // Accepts the connection and reads the request, never answers; a second route sends headers and stalls.
    const hung: Server = createServer((req, res) => {
      if (req.url?.includes('/stall/')) res.writeHead(200, { 'content-type': 'application/fhir+json' }).write('{"res');
    });
    hung.on('connection', (s) => sockets.add(s));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const hungBase = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    try {
      for (const [ehrBase, auth] of [
        [`${hungBase}/fhir/R4`, 'none'],
        [`${hungBase}/stall/fhir/R4`, 'none'],
        [`${hungBase}/fhir/R4`, 'smart'], // SMART discovery against the silent server
      ] as const) {
        const { orderId: id, deliveryId } = await deliveringFhirOrder();
        const cfg = loadConfig({
          ...env,
          FHIR_EHR_BASE_URL: ehrBase,
          FHIR_EHR_AUTH: auth,
          FHIR_SMART_CLIENT_ID: 'bridge',
          FHIR_SMART_KEY_FILE: keyFile,
          FHIR_SMART_KEY_ID: 'k1',
          FHIR_EHR_TIMEOUT_MS: '300',
        });
        const service = new DeliverFhirService(ds, worker.get(PatientIdentityReader), cfg);
        const started = Date.now();
        const outcome = await Promise.race([
          service.deliver(id, deliveryId).then(
            (v) => `resolved ${v}`,
            (e: Error) => e,
          ),
          new Promise<string>((r) => setTimeout(() => r('still waiting after 5 s'), 5000)),
        ]);
        expect(outcome).toBeInstanceOf(TransientDeliveryError);
        expect((outcome as Error).message).toMatch(/did not answer within 300 ms/);
        expect(Date.now() - started).toBeLessThan(3000);
        const [row] = await ds.query(`SELECT status, error FROM deliveries WHERE id = $1`, [deliveryId]);
        expect(row.status).toBe('pending');
        expect(row.error).toMatch(/did not answer within 300 ms \(FHIR_EHR_TIMEOUT_MS\)/);
        await ds.query(`UPDATE orders SET status = 'failed' WHERE id = $1`, [id]);
      }
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => hung.close(() => r()));
    }
  });
});
