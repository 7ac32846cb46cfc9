import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { OrderStatus } from '@hemato/common';
import {
  BACKPORT_PROFILE,
  TestFhirServer,
  fhirValidationErrors,
  orderReaches,
  generateSmear,
  startPipeline,
  type Pipeline,
} from '@hemato/testing';
import type {
  DiagnosticReport,
  Media,
  Observation,
  Patient,
  ServiceRequest,
  Subscription,
  Task,
} from '@medplum/fhirtypes';
import { exportJWK, exportPKCS8, generateKeyPair } from 'jose';
import { API_KEY, fhirFetch, patient } from './fhir-helpers';

/**
 * The whole FHIR path: an order written in the EHR, a Backport notification to us, the ServiceRequest,
 * Patient and smear image read from the EHR (SMART), Hemato.AI (the sandbox) makes the report, and the
 * DiagnosticReport lands in the EHR; the order completes and both Tasks say so.
 */
describe('FHIR end to end: EHR order → Hemato.AI sandbox → DiagnosticReport in the EHR', () => {
  let ehr: TestFhirServer;
  let p: Pipeline;

  beforeAll(async () => {
    const keys = await generateKeyPair('ES384', { extractable: true });
    const keyFile = path.join(mkdtempSync(path.join(tmpdir(), 'fhir-e2e-')), 'smart.pem');
    writeFileSync(keyFile, await exportPKCS8(keys.privateKey), { mode: 0o600 });
    ehr = await TestFhirServer.start({
      auth: {
        kind: 'smart',
        clients: [{ clientId: 'bridge', jwks: [{ ...(await exportJWK(keys.publicKey)), kid: 'e2e', alg: 'ES384' }] }],
      },
    });
    p = await startPipeline('fhire2e', {
      FHIR_API_KEYS: API_KEY,
      FHIR_EHR_BASE_URL: ehr.baseUrl,
      FHIR_EHR_AUTH: 'smart',
      FHIR_SMART_CLIENT_ID: 'bridge',
      FHIR_SMART_KEY_FILE: keyFile,
      FHIR_SMART_KEY_ID: 'e2e',
      FHIR_SMART_ALG: 'ES384',
      FHIR_SMART_SCOPES:
        'system/ServiceRequest.read system/Patient.read system/Media.read system/DiagnosticReport.write system/Observation.write system/Task.write',
    });
  });
  afterAll(async () => {
    await p?.close();
    await ehr?.close();
  });

  it('delivers one DiagnosticReport with ICD-10 conclusion codes and completes the order and Tasks', async () => {
    await ehr.create<Subscription>({
      resourceType: 'Subscription',
      meta: { profile: [BACKPORT_PROFILE] },
      status: 'requested',
      reason: 'smear orders',
      criteria: 'ServiceRequest?status=active',
      channel: {
        type: 'rest-hook',
        endpoint: `${p.httpUrl}/fhir/subscription-hook`,
        payload: 'application/fhir+json',
        header: [`Authorization: Bearer ${API_KEY}`],
      },
    });
    await ehr.settled();
    const pat = await ehr.create({
      ...patient(undefined as never, 'MRN-E2E'),
      address: [{ line: ['48 Larkspur Terrace'], city: 'Wexbridge', postalCode: '90311' }],
      telecom: [{ system: 'phone', value: '555-0199-2211' }],
    } as unknown as Patient);
    const smear = generateSmear({ width: 640, height: 480, format: 'png', seed: 7, parasites: true });
    const media = await ehr.create<Media>({
      resourceType: 'Media',
      status: 'completed',
      subject: { reference: `Patient/${pat.id}` },
      content: { contentType: 'image/png', data: smear.toString('base64'), title: 'smear.png' },
    });
    const sr = await ehr.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:ehr:placer', value: 'E2E-1' }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
      subject: { reference: `Patient/${pat.id}` },
      supportingInfo: [{ reference: `Media/${media.id}` }],
    });
    const ehrTask = await ehr.create<Task>({
      resourceType: 'Task',
      status: 'requested',
      intent: 'order',
      basedOn: [{ reference: `ServiceRequest/${sr.id}` }],
    });
    await ehr.settled();

    const order = await orderReaches(
      p.db,
      { externalKey: 'fhir:urn:ehr:placer|E2E-1' },
      OrderStatus.Completed,
      120_000,
    );

    const reports = await ehr.search<DiagnosticReport>('DiagnosticReport');
    expect(reports).toHaveLength(1);
    const dr = reports[0]!;
    expect(dr.subject).toEqual({ reference: `Patient/${pat.id}` });
    expect(dr.basedOn).toEqual([{ reference: `ServiceRequest/${sr.id}` }]);
    expect(dr.conclusionCode?.[0]?.coding?.[0]).toMatchObject({
      system: 'http://hl7.org/fhir/sid/icd-10',
      code: 'B50',
    });
    expect(dr.conclusion).toContain('SANDBOX REPORT');
    const observations = await ehr.search<Observation>('Observation', { _count: '100' });
    expect(observations.length).toBe(dr.result!.length);
    for (const r of [dr, ...observations]) expect(fhirValidationErrors(r)).toEqual([]);
    expect((await ehr.repo.readResource<Task>('Task', ehrTask.id)).status).toBe('completed');

    const ours = await fhirFetch(`${p.httpUrl}/fhir/Task/${order.id}`);
    expect(ours.body.status).toBe('completed');
    expect(ours.body.businessStatus.coding[0].code).toBe('completed');
    expect(ours.body.output[0].valueReference.reference).toBe(`DiagnosticReport/${order.id}`);

    // No PHI reached Hemato.AI: none of the Patient's values is in the sandbox's request log.
    const log = (await (await fetch(`${p.sandbox.url}/_sandbox/requests`)).text()).toLowerCase();
    expect(log).toContain('patient_proxy_id');
    for (const value of [
      'MRN-E2E',
      'Testperson',
      'Alex',
      '1970-01-01',
      '19700101',
      '48 Larkspur Terrace',
      'Wexbridge',
      '555-0199-2211',
    ]) {
      expect(log).not.toContain(value.toLowerCase());
    }
  });
});
