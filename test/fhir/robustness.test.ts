/*
 * FHIR intake under malformed input and a failing EHR (found by an adversarial probe; each case failed
 * before its fix): wrong JSON types answer 400, not 500; inline bytes that are no image answer 422; a
 * Backport event whose handling failed (503) is taken in when the EHR sends it again; a batch answers
 * an entry's refusal in that entry. Then known small defects, each failing before its fix: If-None-Exist
 * without a system, a Bundle entry's ifNoneExist, concurrent revokes, an image no ServiceRequest takes,
 * a versioned subject, bad Backport event numbers, unknown /fhir routes, a non-JSON Content-Type and a
 * notified ServiceRequest the EHR does not find.
 */
import { TestFhirServer } from '@hemato/testing';
import type { Patient, ServiceRequest } from '@medplum/fhirtypes';
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { API_KEY, PNG_1x1, fhirFetch, patient, serviceRequest, startGateway } from './fhir-helpers';

const EHR_TOKEN = 'ehr-static-token-abc';

function backport(
  sub: string,
  events: Array<{ n: number | string; focus?: string }>,
  since?: number | string,
  type = 'event-notification',
) {
  return {
    resourceType: 'Bundle',
    type: 'history',
    entry: [
      {
        fullUrl: 'urn:uuid:6f1c1d3e-0000-4000-8000-000000000001',
        resource: {
          resourceType: 'Parameters',
          parameter: [
            { name: 'subscription', valueReference: { reference: sub } },
            { name: 'status', valueCode: 'active' },
            { name: 'type', valueCode: type },
            ...(since !== undefined ? [{ name: 'events-since-subscription-start', valueString: String(since) }] : []),
            ...events.map((e) => ({
              name: 'notification-event',
              part: [
                { name: 'event-number', valueString: String(e.n) },
                ...(e.focus ? [{ name: 'focus', valueReference: { reference: e.focus } }] : []),
              ],
            })),
          ],
        },
      },
    ],
  };
}

describe('FHIR intake: malformed input and a failing EHR', () => {
  let ehr: TestFhirServer;
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;
  let pat: Patient & { id: string };

  beforeAll(async () => {
    ehr = await TestFhirServer.start({ auth: { kind: 'bearer', token: EHR_TOKEN } });
    ({ gw, ds, base } = await startGateway('fhirrobust', {
      FHIR_EHR_BASE_URL: ehr.baseUrl,
      FHIR_EHR_AUTH: 'bearer',
      FHIR_EHR_TOKEN: EHR_TOKEN,
      IMAGE_MAX_BYTES: '100000',
    }));
    pat = await ehr.create(patient(undefined as never, 'MRN-ROBUST') as unknown as Patient);
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
    await ehr?.close();
  });

  const post = (body: unknown, extra: { headers?: Record<string, string>; token?: string | null } = {}) =>
    fhirFetch(`${base}/fhir/ServiceRequest`, { body, ...extra });
  const keyOf = (sr: Record<string, unknown>) => {
    const id = (sr.identifier as Array<{ system: string; value: string }>)[0]!;
    return `fhir:${id.system}|${id.value}`;
  };
  const countByKey = async (key: string) =>
    (await ds.query(`SELECT count(*)::int AS n FROM orders WHERE external_key = $1`, [key]))[0].n as number;
  const hook = (body: unknown) =>
    fetch(`${base}/fhir/subscription-hook`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/fhir+json' },
      body: JSON.stringify(body),
    }).then(async (r) => ({ status: r.status, body: JSON.parse(await r.text()) }));

  it('takes in a Backport event answered 503 (EHR read failed) when the EHR sends it again', async () => {
    const sr = await ehr.create(
      serviceRequest({ subject: { reference: `Patient/${pat.id}` } }) as unknown as ServiceRequest,
    );
    const n = backport(
      `${ehr.baseUrl}/Subscription/f1`,
      [{ n: 1, focus: `${ehr.baseUrl}/ServiceRequest/${sr.id}` }],
      1,
    );
    ehr.failBeforeProcessing = 1;
    expect((await hook(n)).status).toBe(503); // "send it again"
    const again = await hook(n);
    expect(again.status).toBe(200);
    // It once answered "1 duplicate event(s)" and the order was lost (the event was recorded before the read).
    expect(await countByKey(keyOf(sr as never))).toBe(1);
  });

  it.each([
    ['identifier as a string', serviceRequest({ identifier: 'abc' })],
    ['identifier as an object', serviceRequest({ identifier: { system: 'urn:x', value: 'y' } })],
    ['code.coding as a string', serviceRequest({ code: { coding: 'x' } })],
    [
      'code.coding[0].code as a number',
      serviceRequest({ code: { coding: [{ system: 'http://loinc.org', code: 34994 }] } }),
    ],
    ['subject.reference as a number', serviceRequest({ subject: { reference: 123 } })],
    ['supportingInfo as an object', serviceRequest({ supportingInfo: { reference: 'Media/1' } })],
    [
      'contained as an object',
      serviceRequest({ contained: { resourceType: 'Patient', id: 'p' }, subject: { reference: '#p' } }),
    ],
    [
      'contained Patient.name as a string',
      serviceRequest({
        contained: [{ resourceType: 'Patient', id: 'p', name: 'Alex', identifier: [{ value: 'M1' }] }],
        subject: { reference: '#p' },
      }),
    ],
    ['note as a string', serviceRequest({ note: 'hello' })],
    ['specimen as an object', serviceRequest({ specimen: { reference: 'Specimen/1' } })],
  ])('answers 400 (OperationOutcome), not 500, to a ServiceRequest with %s', async (_name, body) => {
    const r = await post(body);
    expect(r.body.resourceType).toBe('OperationOutcome');
    expect(r.status).toBe(400);
  });

  it.each([
    ['entry as an object', { resource: serviceRequest() }],
    ['entry [null]', [null]],
  ])('answers 400, not 500, to a Bundle with %s', async (_name, entry) => {
    const r = await fhirFetch(`${base}/fhir`, { body: { resourceType: 'Bundle', type: 'transaction', entry } });
    expect(r.status).toBe(400);
  });

  it('refuses (422) inline attachment bytes that are not JPEG/PNG/zip, even labelled image/png', async () => {
    const garbage = Buffer.from('this is not an image at all, just text').toString('base64');
    const sr = serviceRequest({
      contained: [
        {
          resourceType: 'Media',
          id: 'm',
          status: 'completed',
          content: { contentType: 'image/png', data: garbage, title: 'x.png' },
        },
      ],
      supportingInfo: [{ reference: '#m' }],
    });
    const r = await post(sr);
    expect(r.status).toBe(422);
    expect(await countByKey(keyOf(sr))).toBe(0);
  });

  it('answers a batch entry whose image is too large with its own 413, and the batch with every entry', async () => {
    const big = Buffer.alloc(200_000, 1);
    big.set(Buffer.from(PNG_1x1, 'base64'));
    const s1 = serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: 'F4-1' } } });
    const s2 = serviceRequest({
      subject: { identifier: { system: 'urn:mrn', value: 'F4-2' } },
      contained: [
        {
          resourceType: 'Media',
          id: 'm',
          status: 'completed',
          content: { contentType: 'image/png', data: big.toString('base64') },
        },
      ],
      supportingInfo: [{ reference: '#m' }],
    });
    const r = await fhirFetch(`${base}/fhir`, {
      body: { resourceType: 'Bundle', type: 'batch', entry: [{ resource: s1 }, { resource: s2 }] },
    });
    // It once answered 413 for the whole batch while entry 0 was stored and committed.
    expect(await countByKey(keyOf(s1))).toBe(1);
    expect(r.status).toBe(200);
    expect(r.body.entry.map((e: { response: { status: string } }) => e.response.status)).toEqual([
      '201 Created',
      '413',
    ]);
  });
  const sys = 'urn:oid:1.2.3.4.placer';
  const countByValue = async (value: string) =>
    (
      await ds.query(
        `SELECT count(*)::int AS n FROM orders WHERE external_key LIKE 'fhir:%' AND external_key LIKE $1`,
        [`%|${value}`],
      )
    )[0].n as number;

  it('If-None-Exist: identifier=value (no system) matches that value under any system, and 412 when two match', async () => {
    const value = `NOSYS-${Date.now()}`;
    const first = await post(serviceRequest({ identifier: [{ system: sys, value }] }));
    expect(first.status).toBe(201);
    const again = await post(serviceRequest({ identifier: [{ system: sys, value }] }), {
      headers: { 'if-none-exist': `identifier=${value}` },
    });
    // It once looked up `fhir:|value` only, and stored a second order.
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(await countByValue(value)).toBe(1);

    expect((await post(serviceRequest({ identifier: [{ system: 'urn:other', value }] }))).status).toBe(201);
    const ambiguous = await post(serviceRequest({ identifier: [{ system: sys, value }] }), {
      headers: { 'if-none-exist': `identifier=${value}` },
    });
    expect(ambiguous.status).toBe(412);
    expect(ambiguous.body.resourceType).toBe('OperationOutcome');
    expect(await countByValue(value)).toBe(2);
  });

  it.each(['transaction', 'batch'])('honours request.ifNoneExist of a %s Bundle entry', async (type) => {
    const value = `INE-${type}-${Date.now()}`;
    const noId = serviceRequest({ identifier: undefined });
    const first = await post(noId, { headers: { 'if-none-exist': `identifier=${sys}|${value}` } });
    expect(first.status).toBe(201);
    const r = await fhirFetch(`${base}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type,
        entry: [
          {
            resource: noId,
            request: { method: 'POST', url: 'ServiceRequest', ifNoneExist: `identifier=${sys}|${value}` },
          },
        ],
      },
    });
    expect(r.status).toBe(200);
    // It once created a second order: ifNoneExist was ignored.
    expect(r.body.entry[0].response.status).toBe('200 OK');
    expect(r.body.entry[0].resource.id).toBe(first.body.id);
    expect(await countByValue(value)).toBe(1);
  });

  it('answers concurrent revokes of one order all with 200 and the order cancelled', async () => {
    const sr = serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: 'REVOKE-RACE' } } });
    const first = await post(sr);
    expect(first.status).toBe(201);
    const revokes = await Promise.all([1, 2, 3, 4, 5].map(() => post({ ...sr, status: 'revoked' })));
    // One of them once answered 422 "Order cannot move from cancelled to cancelled".
    expect(revokes.map((r) => [r.status, r.body.status])).toEqual(revokes.map(() => [200, 'cancelled']));
    const [row] = await ds.query(`SELECT status FROM orders WHERE id = $1`, [first.body.id]);
    expect(row.status).toBe('cancelled');
  });

  it('refuses (422, naming the entry) a Bundle image that belongs to none of its ServiceRequests', async () => {
    const s1 = serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: 'ORPHAN-1' } } });
    const s2 = serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: 'ORPHAN-2' } } });
    const media = {
      resourceType: 'Media',
      status: 'completed',
      content: { contentType: 'image/png', data: PNG_1x1, title: 'smear.png' },
    };
    const entry = [
      { fullUrl: 'urn:uuid:7a000000-0000-4000-8000-000000000001', resource: s1 },
      { fullUrl: 'urn:uuid:7a000000-0000-4000-8000-000000000002', resource: s2 },
      { fullUrl: 'urn:uuid:7a000000-0000-4000-8000-000000000003', resource: media },
    ];
    const tx = await fhirFetch(`${base}/fhir`, { body: { resourceType: 'Bundle', type: 'transaction', entry } });
    // It once answered 200, the image "taken in with the order" and stored with neither.
    expect(tx.status).toBe(422);
    expect(tx.body.issue[0].expression).toEqual(['Bundle.entry[2]']);
    expect(await countByKey(keyOf(s1))).toBe(0);

    const batch = await fhirFetch(`${base}/fhir`, { body: { resourceType: 'Bundle', type: 'batch', entry } });
    expect(batch.status).toBe(200);
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).toEqual([
      '201 Created',
      '201 Created',
      '422',
    ]);
    expect(batch.body.entry[2].response.outcome.issue[0].expression).toEqual(['Bundle.entry[2]']);
  });

  it('takes a versioned subject reference (Patient/{id}/_history/{v}) as the Patient', async () => {
    const r = await post(serviceRequest({ subject: { reference: `Patient/${pat.id}/_history/1` } }));
    // It once answered 422 "ServiceRequest.subject must be a Patient".
    expect(r.status).toBe(201);
    expect(r.body.for).toEqual({ reference: `Patient/${pat.id}` });
  });

  it.each([['1e30'], ['1.5'], ['-3'], ['99999999999999999999'], ['abc']])(
    'answers a Backport event-number %s with 400 and an OperationOutcome',
    async (n) => {
      const r = await hook(backport(`${ehr.baseUrl}/Subscription/bad-n`, [{ n }], 1));
      expect(r.status).toBe(400);
      expect(r.body.resourceType).toBe('OperationOutcome');
    },
  );

  it('answers a Backport heartbeat counting 1e30 events with 400', async () => {
    const r = await hook(backport(`${ehr.baseUrl}/Subscription/bad-since`, [], '1e30', 'heartbeat'));
    expect(r.status).toBe(400);
    expect(r.body.resourceType).toBe('OperationOutcome');
  });

  it.each([
    ['GET', '/fhir/Foo', 404],
    ['POST', '/fhir/Observation', 404],
    ['GET', '/fhir/ServiceRequest/x/y/z', 404],
    ['GET', '/fhir/Task/x/y', 404],
    ['DELETE', '/fhir/ServiceRequest/x', 405],
    ['PUT', '/fhir/Task/x', 405],
    ['POST', '/fhir/DiagnosticReport', 405],
    ['GET', '/fhir', 405],
  ])('answers %s %s with %d and an OperationOutcome', async (method, path, status) => {
    const r = await fhirFetch(`${base}${path}`, {
      method,
      body: method === 'GET' || method === 'DELETE' ? undefined : {},
    });
    expect(r.status).toBe(status);
    if (status === 405) expect(r.headers.get('allow')).toMatch(/^(GET|POST)/);
    expect(r.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(r.body.resourceType).toBe('OperationOutcome');
  });

  it('answers a POST that is not JSON with 415 and takes JSON with charset or fhirVersion parameters', async () => {
    for (const url of [`${base}/fhir/ServiceRequest`, `${base}/fhir`]) {
      const r = await fhirFetch(url, { body: serviceRequest(), headers: { 'content-type': 'text/plain' } });
      // It once answered 400 "Body must be a ServiceRequest".
      expect(r.status).toBe(415);
      expect(r.body.resourceType).toBe('OperationOutcome');
    }
    for (const ct of [
      'application/json',
      'application/json; charset=utf-8',
      'application/fhir+json; fhirVersion=4.0',
      'application/fhir+json;charset=UTF-8',
    ]) {
      expect((await post(serviceRequest(), { headers: { 'content-type': ct } })).status).toBe(201);
    }
  });

  it('answers 503 to a Backport event whose ServiceRequest the EHR does not find, and takes it in when sent again', async () => {
    const id = `late-${Date.now()}`;
    const n = backport(`${ehr.baseUrl}/Subscription/f9`, [{ n: 1, focus: `${ehr.baseUrl}/ServiceRequest/${id}` }], 1);
    const first = await hook(n);
    // It once answered 200, the event recorded as seen and never taken in.
    expect(first.status).toBe(503);
    expect(first.body.resourceType).toBe('OperationOutcome');
    const sr = await ehr.update({
      ...(serviceRequest({ subject: { reference: `Patient/${pat.id}` } }) as unknown as ServiceRequest),
      id,
    });
    const again = await hook(n);
    expect(again.status).toBe(200);
    expect(await countByKey(keyOf(sr as never))).toBe(1);
  });

  /** A string of `n` characters that does not compress (an index entry keeps its size). */
  const incompressible = (n: number) =>
    Array.from({ length: n }, () => String.fromCharCode(48 + Math.floor(Math.random() * 75))).join('');

  it('answers 400 (not 500) to text PostgreSQL cannot store: U+0000 or an unpaired surrogate, in a body, If-None-Exist or a search', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [serviceRequest({ note: [{ text: 'smear \u0000 urgent' }] }), 'ServiceRequest.note[0].text'],
      [
        serviceRequest({ identifier: [{ system: sys, value: `LONE-\ud800-${Date.now()}` }] }),
        'ServiceRequest.identifier[0].value',
      ],
    ];
    for (const [sr, where] of cases) {
      const r = await post(sr);
      // It answered 500 (invalid byte sequence for encoding "UTF8": 0x00 / unsupported Unicode escape sequence).
      expect(r.status).toBe(400);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect(r.body.issue[0].expression).toEqual([where]);
    }
    const value = `NUL-INE-${Date.now()}`;
    const ine = await post(serviceRequest({ identifier: [{ system: sys, value }] }), {
      headers: { 'if-none-exist': `identifier=${sys}|${value}%00` },
    });
    expect(ine.status).toBe(400);
    expect(await countByValue(value)).toBe(0);

    // A Bundle: refused whole, naming the entry; nothing of it stored.
    const ok = serviceRequest();
    const bundle = await fhirFetch(`${base}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ resource: ok }, { resource: serviceRequest({ note: [{ text: 'a\u0000' }] }) }],
      },
    });
    expect(bundle.status).toBe(400);
    expect(bundle.body.issue[0].expression).toEqual(['Bundle.entry[1].resource.note[0].text']);
    expect(await countByKey(keyOf(ok))).toBe(0);

    for (const q of ['Task?focus=%00', 'DiagnosticReport?based-on=ServiceRequest%2F%00']) {
      const r = await fhirFetch(`${base}/fhir/${q}`);
      expect(r.status).toBe(400);
      expect(r.body.resourceType).toBe('OperationOutcome');
    }
    const note = await hook(backport(`${ehr.baseUrl}/Subscription/nul\u0000`, [], undefined, 'handshake'));
    expect(note.status).toBe(400);
    expect(note.body.resourceType).toBe('OperationOutcome');
  });

  it('answers 400 (not 500) to an identifier or subscription too long to index; a batch answers that entry alone', async () => {
    const long = serviceRequest({ identifier: [{ system: sys, value: incompressible(3000) }] });
    const r = await post(long);
    // It answered 500 (index row size exceeds btree maximum for orders_external_key_key).
    expect(r.status).toBe(400);
    expect(r.body.issue[0].expression).toEqual(['ServiceRequest.identifier']);
    expect(r.body.issue[0].diagnostics).toMatch(/too long/);
    const ine = await post(serviceRequest({ identifier: undefined }), {
      headers: { 'if-none-exist': `identifier=${sys}|${incompressible(3000)}` },
    });
    expect(ine.status).toBe(400);

    const ok = serviceRequest();
    const batch = await fhirFetch(`${base}/fhir`, {
      body: { resourceType: 'Bundle', type: 'batch', entry: [{ resource: ok }, { resource: long }] },
    });
    expect(batch.status).toBe(200);
    expect(batch.body.entry.map((e: { response: { status: string } }) => e.response.status)).toEqual([
      '201 Created',
      '400',
    ]);
    expect(await countByKey(keyOf(ok))).toBe(1);

    const note = await hook(
      backport(`${ehr.baseUrl}/Subscription/${incompressible(3000)}`, [], undefined, 'handshake'),
    );
    expect(note.status).toBe(400);
    expect(note.body.resourceType).toBe('OperationOutcome');
  });

  it('answers 400 to identifier values that are not strings; two such orders were once taken as one', async () => {
    const a = await post(serviceRequest({ identifier: [{ system: sys, value: { first: 1 } }] }));
    const b = await post(serviceRequest({ identifier: [{ system: sys, value: { second: 2 } }] }));
    // Both were keyed `…|[object Object]`: the first answered 201, the second 200 with the first's order.
    for (const r of [a, b]) {
      expect(r.status).toBe(400);
      expect(r.body.issue[0].code).toBe('structure');
      expect(r.body.issue[0].expression).toEqual(['ServiceRequest.identifier[0].value']);
    }
    expect(await countByKey(`fhir:${sys}|[object Object]`)).toBe(0);
    // A logical patient identifier that is a number answered 500 (value.trim is not a function).
    const mrn = await post(serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: 12345 } } }));
    expect(mrn.status).toBe(400);
    expect(mrn.body.issue[0].expression).toEqual(['ServiceRequest.subject.identifier.value']);
  });

  it.each([
    [
      'an image basedOn as a string',
      {
        resourceType: 'Media',
        id: 'm1',
        basedOn: 'ServiceRequest/x',
        content: { contentType: 'image/png', data: PNG_1x1 },
      },
    ],
    [
      'a DocumentReference content [5, null]',
      { resourceType: 'DocumentReference', id: 'd1', status: 'current', content: [5, null] },
    ],
    ['Binary.data as a number', { resourceType: 'Binary', id: 'b1', contentType: 'image/png', data: 5 }],
  ])('answers a Bundle with %s 400 (not 500), nothing stored', async (_name, image) => {
    // One ServiceRequest: the image is its own without being listed in supportingInfo.
    const sr = serviceRequest();
    const r = await fhirFetch(`${base}/fhir`, {
      body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: sr }, { resource: image }] },
    });
    expect(r.status).toBe(400);
    expect(r.body.resourceType).toBe('OperationOutcome');
    expect(r.body.issue[0].code).toBe('structure');
    expect(await countByKey(keyOf(sr))).toBe(0);
  });

  it.each([
    ['parameter as a string', 'x'],
    ['parameter [null]', [null]],
    [
      'notification-event part as a string',
      [
        { name: 'subscription', valueReference: { reference: 'Subscription/s' } },
        { name: 'type', valueCode: 'event-notification' },
        { name: 'notification-event', part: 'x' },
      ],
    ],
  ])('answers a Backport notification with %s 400 (not 500)', async (_name, parameter) => {
    const r = await hook({
      resourceType: 'Bundle',
      type: 'history',
      entry: [{ resource: { resourceType: 'Parameters', parameter } }],
    });
    expect(r.status).toBe(400);
    expect(r.body.resourceType).toBe('OperationOutcome');
  });

  it.each([
    ['../Patient/x', '../Patient/x'],
    ['a number', 5],
  ])(
    'answers a notified resource whose id is %s 400, not 503 (which the EHR would resend for ever)',
    async (_name, id) => {
      const r = await hook({ resourceType: 'ServiceRequest', id });
      expect(r.status).toBe(400);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect(r.body.issue[0].expression).toEqual(['ServiceRequest.id']);
    },
  );
  it.each([
    ['authoredOn as a local date', { authoredOn: '27/11/2026' }, 'ServiceRequest.authoredOn'],
    ['authoredOn with a time but no zone', { authoredOn: '2026-11-27T08:00:00' }, 'ServiceRequest.authoredOn'],
    ['an unknown priority', { priority: 'super-urgent' }, 'ServiceRequest.priority'],
    [
      'a Specimen collected "yesterday"',
      {
        contained: [{ resourceType: 'Specimen', id: 'sp', collection: { collectedDateTime: 'yesterday' } }],
        specimen: [{ reference: '#sp' }],
      },
      'ServiceRequest.specimen[0].resolve().collection.collectedDateTime',
    ],
  ])(
    'answers 400 naming the element to a ServiceRequest with %s, and stores nothing',
    async (_name, over, expression) => {
      const sr = serviceRequest(over);
      const r = await post(sr);
      expect(r.status).toBe(400);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect(r.body.issue[0].code).toBe('value');
      expect(r.body.issue[0].expression).toEqual([expression]);
      expect(await countByKey(keyOf(sr))).toBe(0);
    },
  );

  it('takes the FHIR dateTime forms a real EHR sends: a year, a date, a time with zone and fraction', async () => {
    for (const authoredOn of ['2026', '2026-11', '2026-11-27', '2026-11-27T08:00:00.123+01:00']) {
      const sr = serviceRequest({
        authoredOn,
        priority: 'stat',
        contained: [{ resourceType: 'Specimen', id: 'sp', collection: { collectedDateTime: '2026-11-27T07:45:00Z' } }],
        specimen: [{ reference: '#sp' }],
      });
      const r = await post(sr);
      expect([r.status, authoredOn]).toEqual([201, authoredOn]);
    }
  });
});
