import { DeliveryStatus, OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { DeliveryEntity } from '@hemato/persistence';
import { TestFhirServer, generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import type { DiagnosticReport, Media, Patient, ServiceRequest } from '@medplum/fhirtypes';
import { API_KEY, fhirFetch, patient } from '../fhir/fhir-helpers';

jest.setTimeout(180_000);

/** A field of the first segment of that name in an ER7 message. */
function segmentField(message: string, segment: string, n: number): string {
  const seg = message.split('\r').find((s) => s.startsWith(`${segment}|`)) ?? '';
  return seg.split('|')[n] ?? '';
}

/**
 * RESULT_DELIVERY=both: every report goes back both ways, to the interface engine as ORU^R01 and to the
 * EHR as a DiagnosticReport, whichever channel the order came in on; each side gets the patient and the
 * collection time the order gave, in its own format.
 */
describe('RESULT_DELIVERY=both: an HL7 order and a FHIR order each reach the EHR and the interface engine', () => {
  let ehr: TestFhirServer;
  let p: Pipeline;
  let mllp: MllpClient;

  beforeAll(async () => {
    ehr = await TestFhirServer.start();
    p = await startPipeline('resultboth', {
      RESULT_DELIVERY: 'both',
      FHIR_API_KEYS: API_KEY,
      FHIR_EHR_BASE_URL: ehr.baseUrl,
      // The HL7 sender's assigning authority (PID-3 CX-4) as the EHR's identifier system.
      FHIR_PATIENT_IDENTIFIER_SYSTEMS: 'GENHOSP=urn:oid:1.2.3.4.mrn',
      HL7_RESULT_RECEIVING_APP: 'EPIC-RESULTS',
      HL7_RESULT_RECEIVING_FACILITY: 'GENHOSP',
    });
    mllp = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    mllp?.close();
    await p?.close();
    await ehr?.close();
  });

  /** The DiagnosticReport the EHR holds for our order (identified by the order id). */
  const reportFor = async (orderId: string): Promise<DiagnosticReport | undefined> =>
    (await ehr.search<DiagnosticReport>('DiagnosticReport')).find((r) =>
      r.identifier?.some((i) => i.value === orderId),
    );

  const deliveriesOf = (orderId: string) =>
    p.db.manager.find(DeliveryEntity, { where: { orderId }, order: { target: 'ASC' } });

  it('an HL7 order: ORU to the engine, DiagnosticReport to the EHR Patient with its MRN, both at the OBR-7 time', async () => {
    const pat = await ehr.create<Patient>(patient(undefined as never, 'MRN77001234') as unknown as Patient);
    const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 7, parasites: true });
    const ack = await mllp.send(
      sampleOrm({
        controlId: 'BOTH-HL7-1',
        placer: 'PL-BOTH-HL7',
        collectedAt: '20260101113000+0100',
        images: [{ data: smear, subtype: 'PNG' }],
      }),
      'BOTH-HL7-1',
    );
    expect(ack.code).toBe('AA');
    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-BOTH-HL7' }, OrderStatus.Completed, 150_000);
    const deliveries = await deliveriesOf(order.id);
    expect(deliveries.map((d) => [d.target, d.status])).toEqual([
      ['fhir', DeliveryStatus.Acknowledged],
      ['hl7', DeliveryStatus.Acknowledged],
    ]);

    const oru = await p.receiver.waitFor((m) => m.includes('PL-BOTH-HL7'), 10_000);
    expect(segmentField(oru, 'OBR', 7)).toBe('20260101113000+0100');
    // Addressed back to the order's sender (MSH-3/4 of the ORM), not to HL7_RESULT_RECEIVING_*.
    expect([segmentField(oru, 'MSH', 4), segmentField(oru, 'MSH', 5)]).toEqual(['LIS', 'GENHOSP']);

    const dr = await reportFor(order.id);
    expect(dr?.subject).toEqual({ reference: `Patient/${pat.id}` });
    // OBR-7 as a FHIR dateTime, offset kept (not the order's arrival time).
    expect(dr?.effectiveDateTime).toBe('2026-01-01T11:30:00+01:00');
  });

  it('a FHIR order: DiagnosticReport to the EHR, ORU with the Patient as PID and the Specimen collection time', async () => {
    const pat = await ehr.create<Patient>(patient(undefined as never, 'MRN-BOTH-FHIR') as unknown as Patient);
    const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 8, parasites: false });
    const media = await ehr.create<Media>({
      resourceType: 'Media',
      status: 'completed',
      subject: { reference: `Patient/${pat.id}` },
      content: { contentType: 'image/png', data: smear.toString('base64'), title: 'smear.png' },
    });
    const sr: ServiceRequest = {
      resourceType: 'ServiceRequest',
      contained: [
        {
          resourceType: 'Specimen',
          id: 'sp1',
          collection: { collectedDateTime: '2026-01-02T08:15:00Z' },
        },
      ],
      identifier: [{ system: 'urn:ehr:placer', value: 'PL-BOTH-FHIR' }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
      subject: { reference: `Patient/${pat.id}` },
      specimen: [{ reference: '#sp1' }],
      supportingInfo: [{ reference: `Media/${media.id}` }],
    };
    const created = await fhirFetch(`${p.httpUrl}/fhir/ServiceRequest`, { body: sr });
    expect(created.status).toBe(201);
    const order = await orderReaches(p.db, { id: created.body.id }, OrderStatus.Completed, 150_000);
    const deliveries = await deliveriesOf(order.id);
    expect(deliveries.map((d) => [d.target, d.status])).toEqual([
      ['fhir', DeliveryStatus.Acknowledged],
      ['hl7', DeliveryStatus.Acknowledged],
    ]);

    const oru = await p.receiver.waitFor((m) => m.includes(order.fillerOrderNumber), 10_000);
    // The PID is the EHR Patient's (its MRN and name), never the proxy id.
    expect(segmentField(oru, 'PID', 3)).toContain('MRN-BOTH-FHIR');
    expect(segmentField(oru, 'PID', 5)).toContain('Testperson');
    expect(segmentField(oru, 'OBR', 7)).toBe('20260102081500+0000');
    // Addressed as configured: the FHIR API client that placed the order is no HL7 application.
    expect([segmentField(oru, 'MSH', 4), segmentField(oru, 'MSH', 5)]).toEqual(['EPIC-RESULTS', 'GENHOSP']);
    const dr = await reportFor(order.id);
    expect(dr?.effectiveDateTime).toBe('2026-01-02T08:15:00Z');
  });
});
