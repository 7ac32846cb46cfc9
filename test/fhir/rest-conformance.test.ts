/*
 * FHIR REST conformance (found by a probe; each case failed before its fix): a format we do not serve
 * (XML) answers 406, not JSON.
 */
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { fhirFetch, patient, serviceRequest, startGateway } from './fhir-helpers';

describe('FHIR REST conformance', () => {
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;

  beforeAll(async () => {
    ({ gw, ds, base } = await startGateway('fhirconform'));
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
  });

  const order = (over: Record<string, unknown> = {}) =>
    serviceRequest({ contained: [{ ...patient('pc'), id: 'pat' }], subject: { reference: '#pat' }, ...over });

  it('answers 406 with a JSON OperationOutcome when only XML is acceptable (_format or Accept), JSON otherwise', async () => {
    const created = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: order() });
    expect(created.status).toBe(201);
    const task = `${base}/fhir/Task/${created.body.id}`;
    for (const url of [
      `${base}/fhir/metadata?_format=xml`,
      `${base}/fhir/metadata?_format=application/fhir%2Bxml`,
      `${base}/fhir/metadata?_format=text/xml`,
      `${task}?_format=application/xml`,
    ]) {
      const r = await fhirFetch(url);
      expect([url, r.status]).toEqual([url, 406]);
      expect(r.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      expect(r.body).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ severity: 'error' }] });
    }
    for (const accept of ['application/fhir+xml', 'application/xml, text/xml;q=0.9']) {
      const r = await fhirFetch(task, { headers: { accept } });
      expect([accept, r.status]).toEqual([accept, 406]);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect((await fhirFetch(`${base}/fhir/metadata`, { headers: { accept }, token: null })).status).toBe(406);
    }
    // _format overrides Accept, both ways.
    expect((await fhirFetch(`${task}?_format=json`, { headers: { accept: 'application/fhir+xml' } })).status).toBe(200);
    expect((await fhirFetch(`${task}?_format=xml`, { headers: { accept: 'application/fhir+json' } })).status).toBe(406);
    // JSON stays JSON: any JSON type, wildcards, no Accept at all, _format in its JSON spellings.
    for (const accept of [
      '*/*',
      'application/*',
      'application/fhir+xml, application/json;q=0.5',
      'application/fhir+json;fhirVersion=4.0',
    ]) {
      const r = await fhirFetch(task, { headers: { accept } });
      expect([accept, r.status]).toEqual([accept, 200]);
      expect(r.body.resourceType).toBe('Task');
    }
    const noAccept = await fetch(`${base}/fhir/metadata`, { headers: { accept: '' } });
    expect(noAccept.status).toBe(200);
    for (const f of ['json', 'application/json', 'application/fhir%2Bjson']) {
      const r = await fhirFetch(`${base}/fhir/metadata?_format=${f}`, { headers: { accept: 'application/fhir+xml' } });
      expect([f, r.status]).toEqual([f, 200]);
      expect(r.body.resourceType).toBe('CapabilityStatement');
    }
    // An XML body is refused as unsupported (415), with an OperationOutcome.
    const xml = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: '<ServiceRequest xmlns="http://hl7.org/fhir"><status value="active"/></ServiceRequest>',
      headers: { 'content-type': 'application/fhir+xml' },
    });
    expect(xml.status).toBe(415);
    expect(xml.body.resourceType).toBe('OperationOutcome');
  });
});
