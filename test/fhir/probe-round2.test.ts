/*
 * FHIR intake as EHR integrations send it (second adversarial probe). The refusals and the Prefer / bare-id /
 * charset / PDF cases each failed before their fix; the "takes ..." cases pin down what was found right
 * (several codings, meta.profile, request variants, specimens by urn:uuid, absolute fullUrl and contained).
 */
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { API_KEY, PNG_1x1, addStoredReport, fhirFetch, patient, serviceRequest, startGateway } from './fhir-helpers';

describe('FHIR intake: second probe', () => {
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;
  beforeAll(async () => {
    ({ gw, ds, base } = await startGateway('fhirprobe2'));
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fhirFetch(`${base}/fhir/ServiceRequest`, { body, headers });
  const bundle = (type: string, entry: unknown[], headers: Record<string, string> = {}) =>
    fhirFetch(`${base}/fhir`, { body: { resourceType: 'Bundle', type, entry }, headers });
  const kept = async (placer: string) =>
    (await ds.query(`SELECT count(*)::int AS n FROM orders WHERE placer_order_number = $1`, [placer]))[0].n as number;
  const sr = (placer: string, over: Record<string, unknown> = {}) =>
    serviceRequest({ identifier: [{ system: 'urn:oid:1.2.3.4.placer', value: placer }], ...over });

  describe('modifier elements we do not understand', () => {
    // FHIR R4 (extensibility.html#modifierExtension): a system that does not understand a modifier extension
    // SHALL NOT process the resource as if it were absent; the same for implicitRules (resource.html).
    it('refuses a ServiceRequest with a modifierExtension (422 not-supported at the element), keeping nothing', async () => {
      const r = await post(
        sr('MOD-1', { modifierExtension: [{ url: 'http://example.org/do-not-perform', valueBoolean: true }] }),
      );
      expect(r.status).toBe(422);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect(r.body.issue[0]).toMatchObject({
        code: 'not-supported',
        expression: ['ServiceRequest.modifierExtension[0]'],
      });
      expect(r.body.issue[0].diagnostics).toContain('http://example.org/do-not-perform');
      expect(await kept('MOD-1')).toBe(0);
    });

    it('refuses one on the contained Patient and on a Specimen of the Bundle, and implicitRules', async () => {
      const contained = await post(
        sr('MOD-2', {
          contained: [
            { ...patient('pat', 'MRN-MOD'), contact: [{ modifierExtension: [{ url: 'http://x/m', valueCode: 'x' }] }] },
          ],
          subject: { reference: '#pat' },
        }),
      );
      expect(contained.status).toBe(422);
      expect(contained.body.issue[0].expression).toEqual([
        'ServiceRequest.subject.resolve().contact[0].modifierExtension[0]',
      ]);
      const specimen = await bundle('transaction', [
        {
          fullUrl: 'urn:uuid:5a0c3f52-0000-4000-8000-00000000a001',
          resource: {
            resourceType: 'Specimen',
            collection: { modifierExtension: [{ url: 'http://x/m', valueBoolean: true }] },
          },
          request: { method: 'POST', url: 'Specimen' },
        },
        {
          resource: sr('MOD-3', { specimen: [{ reference: 'urn:uuid:5a0c3f52-0000-4000-8000-00000000a001' }] }),
          request: { method: 'POST', url: 'ServiceRequest' },
        },
      ]);
      expect(specimen.status).toBe(422);
      expect(specimen.body.issue[0].expression).toEqual([
        'Bundle.entry[1].resource.specimen[0].resolve().collection.modifierExtension[0]',
      ]);
      const rules = await post(sr('MOD-4', { implicitRules: 'http://example.org/rules' }));
      expect(rules.status).toBe(422);
      expect(rules.body.issue[0]).toMatchObject({
        code: 'not-supported',
        expression: ['ServiceRequest.implicitRules'],
      });
      expect([await kept('MOD-2'), await kept('MOD-3'), await kept('MOD-4')]).toEqual([0, 0, 0]);
    });

    it('does not refuse the order for a modifier on a resource it never reads (a contained requester, an Observation)', async () => {
      const r = await post(
        sr('MOD-6', {
          contained: [
            {
              resourceType: 'Practitioner',
              id: 'doc',
              modifierExtension: [{ url: 'http://x/m', valueBoolean: true }],
            },
            {
              resourceType: 'Observation',
              id: 'hb',
              status: 'final',
              code: { text: 'Hb' },
              modifierExtension: [{ url: 'http://x/m', valueBoolean: true }],
            },
          ],
          requester: { reference: '#doc' },
          supportingInfo: [{ reference: '#hb' }],
        }),
      );
      expect(r.status).toBe(201);
    });

    it('takes in plain extensions, meta.profile and several codings of which one is mapped', async () => {
      const r = await post(
        sr('MOD-5', {
          meta: { profile: ['http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest'] },
          extension: [{ url: 'http://example.org/ordering-department', valueString: 'Haematology' }],
          code: {
            coding: [
              { system: 'urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.3', code: 'LAB8812' },
              { system: 'http://loinc.org', code: '34994-4' },
            ],
          },
        }),
      );
      expect(r.status).toBe(201);
      expect(await kept('MOD-5')).toBe(1);
    });
  });
  describe('Bundle.entry.request: what each entry asks for', () => {
    // ServiceRequest supports only create here (CapabilityStatement): an update, delete or read of one in a
    // Bundle was taken in as a new order.
    it('refuses a transaction asking to PUT a ServiceRequest or POST it to another type, keeping nothing', async () => {
      const put = await bundle('transaction', [
        { resource: sr('REQ-1'), request: { method: 'POST', url: 'ServiceRequest' } },
        { resource: sr('REQ-2'), request: { method: 'PUT', url: 'ServiceRequest/abc' } },
      ]);
      expect(put.status).toBe(400);
      expect(put.body.issue[0]).toMatchObject({
        code: 'not-supported',
        expression: ['Bundle.entry[1].request.method'],
      });
      const wrongType = await bundle('transaction', [
        { resource: sr('REQ-3'), request: { method: 'POST', url: 'Patient' } },
      ]);
      expect(wrongType.status).toBe(400);
      expect(wrongType.body.issue[0]).toMatchObject({ code: 'invalid', expression: ['Bundle.entry[0].request.url'] });
      expect([await kept('REQ-1'), await kept('REQ-2'), await kept('REQ-3')]).toEqual([0, 0, 0]);
    });

    it('answers a batch entry it cannot serve (PUT, GET, DELETE) in that entry and keeps the others', async () => {
      const r = await bundle('batch', [
        { resource: sr('REQ-4'), request: { method: 'POST', url: 'ServiceRequest' } },
        { resource: sr('REQ-5'), request: { method: 'PUT', url: 'ServiceRequest?identifier=urn:x|REQ-5' } },
        { request: { method: 'GET', url: 'Patient/p1' } },
        { request: { method: 'DELETE', url: 'ServiceRequest/abc' } },
      ]);
      expect(r.status).toBe(200);
      expect(r.body.type).toBe('batch-response');
      expect(r.body.entry.map((e: { response: { status: string } }) => e.response.status)).toEqual([
        '201 Created',
        '400',
        '400',
        '400',
      ]);
      for (const i of [1, 2, 3]) {
        expect(r.body.entry[i].response.outcome.issue[0]).toMatchObject({
          code: 'not-supported',
          expression: [`Bundle.entry[${i}].request.method`],
        });
      }
      expect([await kept('REQ-4'), await kept('REQ-5')]).toEqual([1, 0]);
    });

    it('takes a ServiceRequest POSTed to ServiceRequest, to its absolute URL, or without a request', async () => {
      const r = await bundle('transaction', [
        { resource: sr('REQ-6'), request: { method: 'POST', url: 'ServiceRequest' } },
        { resource: sr('REQ-7'), request: { method: 'POST', url: `${base}/fhir/ServiceRequest` } },
        { resource: sr('REQ-8') },
      ]);
      expect(r.status).toBe(200);
      expect(r.body.entry.map((e: { response: { status: string } }) => e.response.status)).toEqual([
        '201 Created',
        '201 Created',
        '201 Created',
      ]);
    });
  });
  describe('specimen references', () => {
    it('refuses a specimen urn:uuid or #id the request does not hold (422 not-found), as it does for the subject', async () => {
      const r = await bundle('transaction', [
        {
          fullUrl: 'urn:uuid:9b7e3a10-0000-4000-8000-00000000b001',
          resource: sr('SPC-1', { specimen: [{ reference: 'urn:uuid:9b7e3a10-0000-4000-8000-00000000b002' }] }),
          request: { method: 'POST', url: 'ServiceRequest' },
        },
      ]);
      expect(r.status).toBe(422);
      expect(r.body.issue[0]).toMatchObject({
        code: 'not-found',
        expression: ['Bundle.entry[0].resource.specimen[0]'],
      });
      const contained = await post(sr('SPC-2', { specimen: [{ reference: '#spec' }] }));
      expect(contained.status).toBe(422);
      expect(contained.body.issue[0]).toMatchObject({ code: 'not-found', expression: ['ServiceRequest.specimen[0]'] });
      expect([await kept('SPC-1'), await kept('SPC-2')]).toEqual([0, 0]);
    });

    it("reads a Specimen's collection time by urn:uuid, by Type/id against an absolute fullUrl, and contained", async () => {
      const r = await bundle('transaction', [
        {
          fullUrl: 'urn:uuid:9b7e3a10-0000-4000-8000-00000000b003',
          resource: { resourceType: 'Specimen', collection: { collectedDateTime: '2026-11-27T06:00:00Z' } },
          request: { method: 'POST', url: 'Specimen' },
        },
        {
          fullUrl: 'https://ehr.example.org/fhir/Specimen/s4',
          resource: { resourceType: 'Specimen', id: 's4', collection: { collectedDateTime: '2026-11-27T07:00:00Z' } },
          request: { method: 'PUT', url: 'Specimen/s4' },
        },
        {
          resource: sr('SPC-3', { specimen: [{ reference: 'urn:uuid:9b7e3a10-0000-4000-8000-00000000b003' }] }),
          request: { method: 'POST', url: 'ServiceRequest' },
        },
        {
          resource: sr('SPC-4', { specimen: [{ reference: 'Specimen/s4' }] }),
          request: { method: 'POST', url: 'ServiceRequest' },
        },
      ]);
      expect(r.status).toBe(200);
      const one = await post(
        sr('SPC-5', {
          contained: [
            { resourceType: 'Specimen', id: 'spec', collection: { collectedDateTime: '2026-11-27T05:00:00Z' } },
          ],
          specimen: [{ reference: '#spec' }],
        }),
      );
      expect(one.status).toBe(201);
      const collected = async (placer: string) =>
        (await ds.query(`SELECT details->>'collectedAt' AS at FROM orders WHERE placer_order_number = $1`, [placer]))[0]
          ?.at;
      expect([await collected('SPC-3'), await collected('SPC-4'), await collected('SPC-5')]).toEqual([
        '2026-11-27T06:00:00Z',
        '2026-11-27T07:00:00Z',
        '2026-11-27T05:00:00Z',
      ]);
    });
  });
  describe('reference search by bare id', () => {
    // search.html (reference): `[parameter]=[id]` is the logical id of the resource referenced; focus and
    // based-on point at ServiceRequests here, so an id alone names ServiceRequest/[id].
    it('finds the Task and DiagnosticReport of a ServiceRequest given by its id alone', async () => {
      const created = await post(sr('BARE-1'));
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      await addStoredReport(ds, id);
      const tasks = await fhirFetch(`${base}/fhir/Task?focus=${id}`);
      expect(tasks.status).toBe(200);
      expect(tasks.body.total).toBe(1);
      expect(tasks.body.entry[0].resource.focus.reference).toBe(`ServiceRequest/${id}`);
      const reports = await fhirFetch(`${base}/fhir/DiagnosticReport?based-on=${id}`);
      expect(reports.body.total).toBe(1);
      expect(reports.body.entry[0].resource.basedOn[0].reference).toBe(`ServiceRequest/${id}`);
      // The EHR's own id, as the ServiceRequest named it when sent with one.
      const theirs = await post(sr('BARE-2', { id: 'ehr-sr-77' }));
      expect(theirs.status).toBe(201);
      const byTheirs = await fhirFetch(`${base}/fhir/Task?focus=ehr-sr-77`);
      expect(byTheirs.body.total).toBe(1);
      expect(byTheirs.body.entry[0].resource.id).toBe(theirs.body.id);
    });
  });
  describe('Prefer on a Bundle', () => {
    // bundle-response example: whether an entry returns the resource depends on the client's preference;
    // Prefer applies to each entry as it does to a single create.
    const entryOf = (placer: string) => ({ resource: sr(placer), request: { method: 'POST', url: 'ServiceRequest' } });

    it('return=minimal: entries carry the response alone (status, location, etag)', async () => {
      const r = await bundle('batch', [entryOf('PREF-1')], { prefer: 'return=minimal' });
      expect(r.status).toBe(200);
      const e = r.body.entry[0];
      expect(e.resource).toBeUndefined();
      expect(e.response.status).toBe('201 Created');
      expect(e.response.location).toMatch(/\/fhir\/ServiceRequest\/[0-9a-f-]{36}\/_history\/1$/);
      expect(e.response.etag).toBe('W/"1"');
    });

    it('return=representation: each entry is the ServiceRequest created, at its fullUrl', async () => {
      const r = await bundle('transaction', [entryOf('PREF-2')], { prefer: 'return=representation' });
      expect(r.status).toBe(200);
      const e = r.body.entry[0];
      expect(e.resource).toMatchObject({
        resourceType: 'ServiceRequest',
        identifier: [{ value: 'PREF-2' }],
        meta: { versionId: '1' },
      });
      expect(e.fullUrl).toBe(`${base}/fhir/ServiceRequest/${e.resource.id}`);
      expect(e.response.location).toBe(`${e.fullUrl}/_history/1`);
    });

    it('return=OperationOutcome: each entry says what was done in response.outcome', async () => {
      const r = await bundle('batch', [entryOf('PREF-3')], { prefer: 'return=OperationOutcome' });
      const e = r.body.entry[0];
      expect(e.resource).toBeUndefined();
      expect(e.response.outcome).toMatchObject({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'information' }],
      });
    });
  });
  describe('Bundle invariants', () => {
    // bdl-7: fullUrl must be unique in a Bundle (unless the entries are versions of one resource). Two Patients
    // under one fullUrl left the order's patient to whichever came last.
    it('refuses a Bundle whose entries share a fullUrl (400 at the second), keeping nothing', async () => {
      const fullUrl = 'urn:uuid:3c1d2e4f-0000-4000-8000-00000000c001';
      for (const type of ['transaction', 'batch']) {
        const r = await bundle(type, [
          {
            fullUrl,
            resource: { ...patient(undefined as never, 'MRN-DUP-A') },
            request: { method: 'POST', url: 'Patient' },
          },
          {
            fullUrl,
            resource: { ...patient(undefined as never, 'MRN-DUP-B') },
            request: { method: 'POST', url: 'Patient' },
          },
          {
            resource: sr(`DUPURL-${type}`, { subject: { reference: fullUrl } }),
            request: { method: 'POST', url: 'ServiceRequest' },
          },
        ]);
        expect(r.status).toBe(400);
        expect(r.body.issue[0]).toMatchObject({ code: 'invalid', expression: ['Bundle.entry[1].fullUrl'] });
        expect(await kept(`DUPURL-${type}`)).toBe(0);
      }
    });
  });
  describe('subject by identifier', () => {
    it('takes a subject given by identifier alone (no reference), and refuses one whose type is not Patient', async () => {
      const ok = await post(
        sr('SUBJ-1', {
          subject: { type: 'Patient', identifier: { system: 'urn:oid:1.2.3.4.mrn', value: 'MRN-ID-1' } },
        }),
      );
      expect(ok.status).toBe(201);
      expect(ok.body.for).toEqual({ identifier: { system: 'urn:oid:1.2.3.4.mrn', value: 'MRN-ID-1' } });
      // Reference.type says what the identifier names: a Group's identifier is no patient's.
      const group = await post(
        sr('SUBJ-2', { subject: { type: 'Group', identifier: { system: 'urn:x', value: 'G1' } } }),
      );
      expect(group.status).toBe(422);
      expect(group.body.issue[0].expression).toEqual(['ServiceRequest.subject']);
      expect(await kept('SUBJ-2')).toBe(0);
    });
  });
  describe('request body encoding', () => {
    // http.html: FHIR bodies are UTF-8. A Latin-1 body is refused 415 as not-supported, naming what to send.
    it('answers a charset other than UTF-8 with 415 not-supported saying to send UTF-8', async () => {
      const r = await fetch(`${base}/fhir/ServiceRequest`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/fhir+json; charset=ISO-8859-1' },
        body: JSON.stringify(sr('CHARSET-1')),
      });
      expect(r.status).toBe(415);
      expect(r.headers.get('content-type')).toBe('application/fhir+json; charset=utf-8');
      const oo = JSON.parse(await r.text());
      expect(oo.issue[0].code).toBe('not-supported');
      expect(oo.issue[0].diagnostics).toContain('UTF-8');
      expect(await kept('CHARSET-1')).toBe(0);
    });
  });
  describe('supporting documents that are not images', () => {
    // supportingInfo is any clinical information: a requisition PDF or a note beside the smear is not an image
    // to analyse, and was refused with the whole order (422 "not a JPEG, PNG or zip").
    it('takes the order with its image and leaves out a PDF or text attachment declared as such', async () => {
      const pdf = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n').toString('base64');
      const r = await post(
        sr('DOC-1', {
          contained: [
            {
              resourceType: 'DocumentReference',
              id: 'req',
              status: 'current',
              content: [
                { attachment: { contentType: 'application/pdf', data: pdf, title: 'requisition.pdf' } },
                { attachment: { contentType: 'image/png', data: PNG_1x1, title: 'smear.png' } },
              ],
            },
            {
              resourceType: 'Binary',
              id: 'note',
              contentType: 'text/plain',
              data: Buffer.from('clinical note').toString('base64'),
            },
          ],
          supportingInfo: [{ reference: '#req' }, { reference: '#note' }],
        }),
      );
      expect(r.status).toBe(201);
      const images = await ds.query(`SELECT name FROM image_files WHERE order_id = $1`, [r.body.id]);
      expect(images.map((i: { name: string }) => i.name)).toEqual(['smear.png']);
    });

    it('does not count a PDF in a Bundle of several orders as an image no order takes', async () => {
      const r = await bundle('transaction', [
        { resource: sr('DOC-3'), request: { method: 'POST', url: 'ServiceRequest' } },
        { resource: sr('DOC-4'), request: { method: 'POST', url: 'ServiceRequest' } },
        {
          fullUrl: 'urn:uuid:7d2e0f11-0000-4000-8000-00000000d001',
          resource: {
            resourceType: 'DocumentReference',
            status: 'current',
            content: [{ attachment: { contentType: 'application/pdf', url: 'https://ehr.example.org/doc.pdf' } }],
          },
          request: { method: 'POST', url: 'DocumentReference' },
        },
      ]);
      expect(r.status).toBe(200);
      expect([await kept('DOC-3'), await kept('DOC-4')]).toEqual([1, 1]);
    });

    it('still refuses bytes declared as an image that are none', async () => {
      const r = await post(
        sr('DOC-2', {
          contained: [
            {
              resourceType: 'Media',
              id: 'img',
              status: 'completed',
              content: { contentType: 'image/jpeg', data: Buffer.from('%PDF-1.4').toString('base64') },
            },
          ],
          supportingInfo: [{ reference: '#img' }],
        }),
      );
      expect(r.status).toBe(422);
      expect(await kept('DOC-2')).toBe(0);
    });
  });
});
