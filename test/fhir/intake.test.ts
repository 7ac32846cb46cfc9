import { createHash, randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { fhirValidationErrors } from '@hemato/testing';
import { MessageSealer } from '@hemato/privacy';
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import {
  API_KEY,
  PNG_1x1,
  addStoredReport,
  fhirFetch,
  patient,
  serveJson,
  serviceRequest,
  startGateway,
} from './fhir-helpers';

// Named keys: each its own client. `ops` is EHR-wide (FHIR_ADMIN_CLIENTS); API_KEY, bare, is EHR-wide too.
const LAB_KEY = 'key-of-lab-k-0123456789';
const OTHER_LAB_KEY = 'key-of-lab-m-0123456789';
const OPS_KEY = 'key-of-ops-0123456789';

describe('FHIR REST intake', () => {
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;
  let jwks: { url: string; close: () => Promise<void> };
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey;
    jwks = await serveJson({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }] });
    ({ gw, ds, base } = await startGateway('fhirintake', {
      FHIR_API_KEYS: `${API_KEY},lab-k:${LAB_KEY},lab-m:${OTHER_LAB_KEY},ops:${OPS_KEY}`,
      FHIR_ADMIN_CLIENTS: 'ops',
      FHIR_JWKS_URL: jwks.url,
      FHIR_JWT_ISSUER: 'https://idp.test',
      FHIR_JWT_AUDIENCE: 'hemato-bridge',
      IMAGE_URL_ALLOWED_HOSTS: 'images.hospital.example',
    }));
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
    await jwks?.close();
  });

  const jwt = (scope: string, over: { iss?: string; sub?: string } = {}) =>
    new SignJWT({ scope })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(over.iss ?? 'https://idp.test')
      .setAudience('hemato-bridge')
      .setSubject(over.sub ?? 'ehr-client')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);

  it('serves a CapabilityStatement at /fhir/metadata that validates', async () => {
    const r = await fhirFetch(`${base}/fhir/metadata`, { token: null });
    expect(r.status).toBe(200);
    expect(r.body.resourceType).toBe('CapabilityStatement');
    expect(r.body.rest[0].resource.map((x: { type: string }) => x.type)).toEqual(
      expect.arrayContaining(['ServiceRequest', 'Task', 'DiagnosticReport']),
    );
    expect(fhirValidationErrors(r.body)).toEqual([]);
  });

  it('takes a transaction Bundle (Patient, ServiceRequest, Specimen, Media) in as one order with its image and answers with a Task', async () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: 'urn:uuid:0b0e7d0a-1111-4111-8111-000000000001',
          resource: patient('pt-9', 'MRN-9'),
          request: { method: 'POST', url: 'Patient' },
        },
        {
          fullUrl: 'urn:uuid:0b0e7d0a-1111-4111-8111-000000000002',
          resource: {
            resourceType: 'Specimen',
            type: { text: 'Peripheral blood smear' },
            collection: { collectedDateTime: '2026-11-27T07:30:00Z' },
          },
          request: { method: 'POST', url: 'Specimen' },
        },
        {
          fullUrl: 'urn:uuid:0b0e7d0a-1111-4111-8111-000000000003',
          resource: serviceRequest({
            subject: { reference: 'urn:uuid:0b0e7d0a-1111-4111-8111-000000000001' },
            specimen: [{ reference: 'urn:uuid:0b0e7d0a-1111-4111-8111-000000000002' }],
          }),
          request: { method: 'POST', url: 'ServiceRequest' },
        },
        {
          fullUrl: 'urn:uuid:0b0e7d0a-1111-4111-8111-000000000004',
          resource: {
            resourceType: 'Media',
            status: 'completed',
            content: { contentType: 'image/png', data: PNG_1x1, title: 'smear-1.png' },
          },
          request: { method: 'POST', url: 'Media' },
        },
      ],
    };
    const r = await fhirFetch(`${base}/fhir`, { body: bundle });
    expect(r.status).toBe(200);
    expect(r.body.type).toBe('transaction-response');
    const srEntry = r.body.entry[2];
    expect(srEntry.response.status).toBe('201 Created');
    const task = srEntry.resource;
    expect(task.resourceType).toBe('Task');
    expect(task.businessStatus.coding[0].code).toBe('received');
    expect(fhirValidationErrors(task)).toEqual([]);
    const [order] = await ds.query(`SELECT id, tasks, details, patient_proxy_id FROM orders WHERE id = $1`, [task.id]);
    expect(order.tasks).toEqual(['pbs_v1']);
    expect(order.details.collectedAt).toBe('2026-11-27T07:30:00Z');
    expect(JSON.stringify(order.details)).not.toContain('MRN-9');
    const images = await ds.query(`SELECT name, media_type, status FROM image_files WHERE order_id = $1`, [task.id]);
    expect(images).toEqual([{ name: 'smear-1.png', media_type: 'image/png', status: 'stored' }]);
    // The request is kept as received, sealed with the PHI key: the Patient is not in clear in the database.
    const [inbound] = await ds.query(
      `SELECT m.raw FROM orders o JOIN inbound_messages m ON m.id = o.inbound_message_id WHERE o.id = $1`,
      [task.id],
    );
    expect(inbound.raw).toMatch(/^enc:/);
    expect(inbound.raw).not.toMatch(/MRN-9|Testperson/);
    expect(gw.app.get(MessageSealer, { strict: false }).open(inbound.raw)).toContain('"MRN-9"');
  });

  it('answers POST /fhir/ServiceRequest with 201, Location and a Task; a repeated identifier or If-None-Exist returns the same order', async () => {
    const sr = serviceRequest({ contained: [{ ...patient('pc'), id: 'pat' }], subject: { reference: '#pat' } });
    const first = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    expect(first.status).toBe(201);
    expect(first.headers.get('location')).toMatch(new RegExp(`/fhir/ServiceRequest/${first.body.id}/_history/1$`));
    expect(first.body.resourceType).toBe('Task');

    const again = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);

    const id = (sr.identifier as Array<{ system: string; value: string }>)[0]!;
    const withHeader = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: { ...sr, identifier: [{ system: 'urn:other', value: 'x' }] },
      headers: { 'if-none-exist': `identifier=${id.system}|${id.value}` },
    });
    expect(withHeader.status).toBe(200);
    expect(withHeader.body.id).toBe(first.body.id);
    const [{ n }] = await ds.query(`SELECT count(*)::int AS n FROM orders WHERE external_key = $1`, [
      `fhir:${id.system}|${id.value}`,
    ]);
    expect(n).toBe(1);

    const task = await fhirFetch(`${base}/fhir/Task/${first.body.id}`);
    expect(task.status).toBe(200);
    expect(task.body.focus.reference).toBe(`ServiceRequest/${first.body.id}`);
    const search = await fhirFetch(`${base}/fhir/Task?focus=ServiceRequest/${first.body.id}`);
    expect(search.body.total).toBe(1);
    expect(fhirValidationErrors(search.body)).toEqual([]);
  });

  it('the Location a create answers with can be read (vread of that version); the ServiceRequest names its version', async () => {
    const sr = serviceRequest({ contained: [{ ...patient('pv'), id: 'pat' }], subject: { reference: '#pat' } });
    const created = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    expect(created.status).toBe(201);
    const location = created.headers.get('location')!;
    const read = await fhirFetch(location);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ resourceType: 'ServiceRequest', id: created.body.id, meta: { versionId: '1' } });
    expect(fhirValidationErrors(read.body)).toEqual([]);
    const plain = await fhirFetch(`${base}/fhir/ServiceRequest/${created.body.id}`);
    expect(plain.body.meta.versionId).toBe('1');
    expect(plain.body).toEqual(read.body);
    // The same for the location of a Bundle entry's response.
    const bundle = await fhirFetch(`${base}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [
          {
            resource: { ...sr, identifier: [{ system: 'urn:x', value: 'VREAD-2' }] },
            request: { method: 'POST', url: 'ServiceRequest' },
          },
        ],
      },
    });
    const entryLocation = bundle.body.entry[0].response.location as string;
    expect((await fhirFetch(entryLocation)).body.resourceType).toBe('ServiceRequest');
    // A version we never had, or another client's order, answers 404 with an OperationOutcome.
    const other = await fhirFetch(location.replace(/\/1$/, '/2'));
    expect(other.status).toBe(404);
    expect(other.body.resourceType).toBe('OperationOutcome');
    expect((await fhirFetch(location, { token: LAB_KEY })).status).toBe(404);
    const cs = await fhirFetch(`${base}/fhir/metadata`, { token: null });
    const srCaps = cs.body.rest[0].resource.find((r: { type: string }) => r.type === 'ServiceRequest');
    expect(srCaps.interaction.map((i: { code: string }) => i.code)).toContain('vread');
  });

  it('a revoked ServiceRequest is a new version (meta.versionId 2, ETag and Last-Modified to match); version 1 stays readable', async () => {
    const sr = serviceRequest({ contained: [{ ...patient('pw'), id: 'pat' }], subject: { reference: '#pat' } });
    const created = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    expect(created.status).toBe(201);
    const url = `${base}/fhir/ServiceRequest/${created.body.id}`;
    const v1 = await fhirFetch(url);
    expect(v1.body).toMatchObject({ status: 'active', meta: { versionId: '1' } });
    expect(v1.headers.get('etag')).toBe('W/"1"');

    expect((await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...sr, status: 'revoked' } })).status).toBe(200);
    const now = await fhirFetch(url);
    expect(now.body).toMatchObject({ status: 'revoked', meta: { versionId: '2' } });
    expect(now.headers.get('etag')).toBe('W/"2"');
    expect(new Date(now.headers.get('last-modified')!).getTime()).toBe(
      Math.floor(new Date(now.body.meta.lastUpdated).getTime() / 1000) * 1000,
    );
    // A client revalidating the version it had is not told "not modified".
    expect((await fhirFetch(url, { headers: { 'if-none-match': 'W/"1"' } })).status).toBe(200);
    expect(fhirValidationErrors(now.body)).toEqual([]);

    const old = await fhirFetch(`${url}/_history/1`);
    expect(old.status).toBe(200);
    expect(old.body).toMatchObject({ status: 'active', meta: { versionId: '1' } });
    expect((await fhirFetch(`${url}/_history/2`)).body).toEqual(now.body);
    expect((await fhirFetch(`${url}/_history/3`)).status).toBe(404);
  });

  it('answers a create as the Prefer header asks: return=representation the ServiceRequest, minimal no body, OperationOutcome an outcome; none, the Task', async () => {
    const make = () => serviceRequest({ contained: [{ ...patient('pp'), id: 'pat' }], subject: { reference: '#pat' } });
    const rep = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: make(),
      headers: { prefer: 'handling=lenient, return=representation' },
    });
    expect(rep.status).toBe(201);
    expect(rep.body).toMatchObject({ resourceType: 'ServiceRequest', status: 'active', meta: { versionId: '1' } });
    expect(rep.headers.get('location')).toMatch(new RegExp(`/fhir/ServiceRequest/${rep.body.id}/_history/1$`));
    expect(rep.headers.get('etag')).toBe('W/"1"');
    expect(fhirValidationErrors(rep.body)).toEqual([]);

    const sr = make();
    const minimal = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr, headers: { prefer: 'return=minimal' } });
    expect(minimal.status).toBe(201);
    expect(minimal.body).toBeUndefined();
    expect(minimal.headers.get('location')).toMatch(/\/fhir\/ServiceRequest\/[0-9a-f-]{36}\/_history\/1$/);
    // The same order again: 200, as the client asked.
    const again = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: sr,
      headers: { prefer: 'return=OperationOutcome' },
    });
    expect(again.status).toBe(200);
    expect(again.body.resourceType).toBe('OperationOutcome');
    expect(again.body.issue[0].severity).toBe('information');
    expect(fhirValidationErrors(again.body)).toEqual([]);

    const task = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: make() });
    expect(task.body.resourceType).toBe('Task');
  });

  it('cancels the order when the same ServiceRequest comes back revoked', async () => {
    const sr = serviceRequest({ contained: [{ ...patient('pc'), id: 'pat' }], subject: { reference: '#pat' } });
    const first = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    const revoked = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...sr, status: 'revoked' } });
    expect(revoked.status).toBe(200);
    expect(revoked.body.status).toBe('cancelled');
    const [row] = await ds.query(`SELECT status FROM orders WHERE id = $1`, [first.body.id]);
    expect(row.status).toBe('cancelled');
  });

  it('cancels (and holds) an order by its identifier even when the revoked version no longer passes the checks its order passed', async () => {
    const sr = serviceRequest({ contained: [{ ...patient('pr'), id: 'pat' }], subject: { reference: '#pat' } });
    const first = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    expect(first.status).toBe(201);
    // The EHR's later versions carry a code we do not map (changed in the EHR, or since dropped from
    // HEMATO_ORDER_CODES) and no longer the contained Patient: as new orders they would be refused (422).
    const changed = {
      ...sr,
      contained: undefined,
      subject: { reference: 'Patient/gone' },
      code: { coding: [{ system: 'http://loinc.org', code: '00000-0' }] },
    };
    const held = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...changed, status: 'on-hold' } });
    expect(held.status).toBe(200);
    expect((await ds.query(`SELECT status FROM orders WHERE id = $1`, [first.body.id]))[0].status).toBe('on_hold');
    const revoked = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...changed, status: 'revoked' } });
    expect(revoked.status).toBe(200);
    expect(revoked.body.status).toBe('cancelled');
    expect((await ds.query(`SELECT status FROM orders WHERE id = $1`, [first.body.id]))[0].status).toBe('cancelled');
    // With no order of ours to act on, the checks still answer as before.
    const stranger = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: {
        ...changed,
        identifier: [{ system: 'urn:oid:1.2.3.4.placer', value: 'SR-NEVER-ORDERED' }],
        status: 'revoked',
      },
    });
    expect(stranger.status).toBe(422);
  });

  it('cancels the order when the EHR marks its ServiceRequest entered-in-error (void: not to be acted on)', async () => {
    const sr = serviceRequest({ contained: [{ ...patient('pe'), id: 'pat' }], subject: { reference: '#pat' } });
    const first = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    expect(first.status).toBe(201);
    const voided = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...sr, status: 'entered-in-error' } });
    expect(voided.status).toBe(200);
    expect(voided.body.status).toBe('cancelled');
    const [row] = await ds.query(`SELECT status FROM orders WHERE id = $1`, [first.body.id]);
    expect(row.status).toBe('cancelled');
    const events: Array<{ detail: { reason?: string } }> = await ds.query(
      `SELECT detail FROM order_events WHERE order_id = $1 AND to_status = 'cancelled'`,
      [first.body.id],
    );
    expect(events.map((e) => e.detail.reason)).toEqual(['ServiceRequest entered-in-error']);
  });

  it.each([
    ['malformed JSON', '{"resourceType": "ServiceRequest",', 400, 'structure', undefined],
    ['not a ServiceRequest', { resourceType: 'Patient' }, 400, 'structure', 'ServiceRequest.resourceType'],
    ['missing status', serviceRequest({ status: undefined }), 400, 'required', 'ServiceRequest.status'],
    ['missing intent', serviceRequest({ intent: undefined }), 400, 'required', 'ServiceRequest.intent'],
    ['missing subject', serviceRequest({ subject: undefined }), 400, 'required', 'ServiceRequest.subject'],
    ['missing code', serviceRequest({ code: undefined }), 400, 'required', 'ServiceRequest.code'],
    ['unknown status value', serviceRequest({ status: 'bogus' }), 400, 'value', 'ServiceRequest.status'],
    [
      'unmapped code',
      serviceRequest({
        code: { coding: [{ system: 'http://loinc.org', code: '58410-2' }] },
        subject: { identifier: { system: 'urn:mrn', value: '1' } },
      }),
      422,
      'code-invalid',
      'ServiceRequest.code',
    ],
    ['completed order', serviceRequest({ status: 'completed' }), 422, 'business-rule', 'ServiceRequest.status'],
    ['a proposal, not an order', serviceRequest({ intent: 'proposal' }), 422, 'business-rule', 'ServiceRequest.intent'],
    [
      'subject not a Patient',
      serviceRequest({ subject: { reference: 'Group/1' } }),
      422,
      'business-rule',
      'ServiceRequest.subject',
    ],
    [
      'contained patient missing',
      serviceRequest({ subject: { reference: '#nobody' } }),
      422,
      'not-found',
      'ServiceRequest.subject',
    ],
    [
      'entered-in-error with nothing to cancel',
      serviceRequest({ status: 'entered-in-error', subject: { identifier: { system: 'urn:mrn', value: '1' } } }),
      422,
      'business-rule',
      'ServiceRequest.status',
    ],
    [
      'revoked with nothing to cancel',
      serviceRequest({ status: 'revoked', subject: { identifier: { system: 'urn:mrn', value: '1' } } }),
      422,
      'business-rule',
      'ServiceRequest.status',
    ],
  ])('answers %s with an OperationOutcome', async (_name, body, status, code, expression) => {
    const r = await fhirFetch(`${base}/fhir/ServiceRequest`, { body });
    expect(r.status).toBe(status);
    expect(r.body.resourceType).toBe('OperationOutcome');
    expect(r.body.issue[0].code).toBe(code);
    if (expression) expect(r.body.issue[0].expression).toEqual([expression]);
    expect(fhirValidationErrors(r.body)).toEqual([]);
  });

  it('takes a batch Bundle entry by entry: DocumentReference and Binary images, an image URL, and a failing entry with its own outcome', async () => {
    const bundle = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        {
          fullUrl: 'urn:uuid:7a000000-0000-4000-8000-000000000001',
          resource: patient('pb', 'MRN-B'),
          request: { method: 'POST', url: 'Patient' },
        },
        {
          fullUrl: 'urn:uuid:7a000000-0000-4000-8000-000000000002',
          resource: { resourceType: 'Binary', contentType: 'image/png', data: PNG_1x1 },
          request: { method: 'POST', url: 'Binary' },
        },
        {
          fullUrl: 'urn:uuid:7a000000-0000-4000-8000-000000000003',
          resource: {
            resourceType: 'DocumentReference',
            status: 'current',
            content: [
              {
                attachment: {
                  contentType: 'image/png',
                  url: 'urn:uuid:7a000000-0000-4000-8000-000000000002',
                  title: 'from-binary.png',
                },
              },
              {
                attachment: {
                  contentType: 'image/jpeg',
                  url: 'https://images.hospital.example/smear/42.jpg',
                  title: 'remote.jpg',
                },
              },
            ],
          },
          request: { method: 'POST', url: 'DocumentReference' },
        },
        {
          resource: serviceRequest({
            subject: { reference: 'urn:uuid:7a000000-0000-4000-8000-000000000001' },
            supportingInfo: [{ reference: 'urn:uuid:7a000000-0000-4000-8000-000000000003' }],
          }),
          request: { method: 'POST', url: 'ServiceRequest' },
        },
        {
          resource: serviceRequest({
            code: { coding: [{ system: 'http://loinc.org', code: '0000-0' }] },
            subject: { reference: 'urn:uuid:7a000000-0000-4000-8000-000000000001' },
          }),
          request: { method: 'POST', url: 'ServiceRequest' },
        },
      ],
    };
    const r = await fhirFetch(`${base}/fhir`, { body: bundle });
    expect(r.status).toBe(200);
    expect(r.body.type).toBe('batch-response');
    expect(r.body.entry.map((e: { response: { status: string } }) => e.response.status)).toEqual([
      '200 OK',
      '200 OK',
      '200 OK',
      '201 Created',
      '422',
    ]);
    expect(r.body.entry[4].response.outcome.issue[0].expression).toEqual(['Bundle.entry[4].resource.code']);
    const images = await ds.query(
      `SELECT name, source, status, source_url FROM image_files WHERE order_id = $1 ORDER BY name`,
      [r.body.entry[3].resource.id],
    );
    expect(images).toEqual([
      { name: 'from-binary.png', source: 'inline', status: 'stored', source_url: null },
      {
        name: 'remote.jpg',
        source: 'url',
        status: 'pending',
        source_url: 'https://images.hospital.example/smear/42.jpg',
      },
    ]);
    expect(fhirValidationErrors(r.body)).toEqual([]);
  });

  it.each([
    [
      'a host not in IMAGE_URL_ALLOWED_HOSTS',
      'https://reader:s3cret@elsewhere.example/smear/SR-H.jpg',
      /^Image host elsewhere\.example is not in IMAGE_URL_ALLOWED_HOSTS$/,
    ],
    ['no host', 'http://', /not a valid URL/],
    ['a space in the host', 'https://images .hospital.example/smear/1.jpg', /not a valid URL/],
  ])(
    'refuses (422) an image attachment URL with %s, naming the attachment; nothing is stored',
    async (_what, url, why) => {
      const value = randomUUID();
      const r = await fhirFetch(`${base}/fhir/ServiceRequest`, {
        body: serviceRequest({
          identifier: [{ system: 'urn:oid:1.2.3.4.placer', value }],
          contained: [
            { resourceType: 'Media', id: 'm1', status: 'completed', content: { contentType: 'image/jpeg', url } },
          ],
          supportingInfo: [{ reference: '#m1' }],
        }),
      });
      expect(r.status).toBe(422);
      expect(r.body.issue[0].expression).toEqual(['ServiceRequest.supportingInfo[0].content.url']);
      expect(r.body.issue[0].diagnostics).toMatch(why);
      expect(JSON.stringify(r.body)).not.toMatch(/s3cret|SR-H/);
      const [{ n }] = await ds.query(`SELECT count(*)::int AS n FROM orders WHERE external_key = $1`, [
        `fhir:urn:oid:1.2.3.4.placer|${value}`,
      ]);
      expect(n).toBe(0);
    },
  );

  describe('an inline image with Attachment.size and Attachment.hash (R4: base64 SHA-1 of the data)', () => {
    const bytes = Buffer.from(PNG_1x1, 'base64');
    const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('base64');
    const order = (content: Record<string, unknown>) => {
      const value = randomUUID();
      const body = serviceRequest({
        identifier: [{ system: 'urn:oid:1.2.3.4.placer', value }],
        contained: [
          {
            resourceType: 'Media',
            id: 'm1',
            status: 'completed',
            content: { contentType: 'image/png', data: PNG_1x1, ...content },
          },
        ],
        supportingInfo: [{ reference: '#m1' }],
      });
      return { value, body };
    };
    const ordersWith = async (value: string) =>
      (
        await ds.query(`SELECT count(*)::int AS n FROM orders WHERE external_key = $1`, [
          `fhir:urn:oid:1.2.3.4.placer|${value}`,
        ])
      )[0].n;

    it('is taken when they match its data', async () => {
      const { value, body } = order({ size: bytes.length, hash: sha1(bytes) });
      expect((await fhirFetch(`${base}/fhir/ServiceRequest`, { body })).status).toBe(201);
      expect(await ordersWith(value)).toBe(1);
    });

    it.each([
      [
        'size',
        { size: bytes.length + 1 },
        `Attachment.size is ${bytes.length + 1} but its data is ${bytes.length} bytes`,
      ],
      ['hash', { hash: sha1(Buffer.from('another image')) }, 'Attachment.hash does not match its data'],
    ])('is refused (422 at the %s) when they do not, and nothing is stored', async (field, content, why) => {
      const { value, body } = order(content);
      const r = await fhirFetch(`${base}/fhir/ServiceRequest`, { body });
      expect(r.status).toBe(422);
      expect(r.body.issue[0].expression).toEqual([`ServiceRequest.supportingInfo[0].content.${field}`]);
      expect(r.body.issue[0].diagnostics).toContain(why);
      expect(await ordersWith(value)).toBe(0);
    });

    it('is refused (400) with a hash that is no base64 SHA-1', async () => {
      const { body } = order({ hash: Buffer.from('short').toString('base64') });
      const r = await fhirFetch(`${base}/fhir/ServiceRequest`, { body });
      expect(r.status).toBe(400);
      expect(r.body.issue[0].expression).toEqual(['ServiceRequest.supportingInfo[0].content.hash']);
    });
  });

  it('points Bundle errors at the entry and refuses Bundles that are not transaction/batch', async () => {
    const bad = await fhirFetch(`${base}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            resource: serviceRequest({
              code: { coding: [{ system: 'http://loinc.org', code: '1-8' }] },
              subject: { identifier: { value: '1' } },
            }),
          },
        ],
      },
    });
    expect(bad.status).toBe(422);
    expect(bad.body.issue[0].expression).toEqual(['Bundle.entry[0].resource.code']);
    const wrongType = await fhirFetch(`${base}/fhir`, {
      body: { resourceType: 'Bundle', type: 'collection', entry: [] },
    });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.issue[0].expression).toEqual(['Bundle.type']);
    const none = await fhirFetch(`${base}/fhir`, {
      body: { resourceType: 'Bundle', type: 'batch', entry: [{ resource: patient() }] },
    });
    expect(none.status).toBe(422);
  });

  it('authenticates by API key or a JWKS-verified JWT: 401 without or with a bad token, 403 without the scope', async () => {
    const sr = serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: randomUUID() } } });
    const none = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr, token: null });
    expect(none.status).toBe(401);
    expect(none.body.issue[0].code).toBe('login');
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr, token: 'wrong-key' })).status).toBe(401);
    expect(
      (
        await fhirFetch(`${base}/fhir/ServiceRequest`, {
          body: sr,
          token: await jwt('system/ServiceRequest.write', { iss: 'https://evil.test' }),
        })
      ).status,
    ).toBe(401);

    const readOnly = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr, token: await jwt('system/Task.read') });
    expect(readOnly.status).toBe(403);
    expect(readOnly.body.issue[0].code).toBe('forbidden');

    const ok = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: sr,
      token: await jwt('system/ServiceRequest.write system/Task.read'),
    });
    expect(ok.status).toBe(201);
    const [row] = await ds.query(
      `SELECT m.sender FROM orders o JOIN inbound_messages m ON m.id = o.inbound_message_id WHERE o.id = $1`,
      [ok.body.id],
    );
    expect(row.sender).toBe('jwt:ehr-client');
  });

  const addReport = (orderId: string) => addStoredReport(ds, orderId);

  it('keeps FHIR clients apart: another client reads the order as absent (404) and cannot revoke it; its own client and EHR-wide callers can', async () => {
    const all = 'system/*.cruds';
    const labA = await jwt(all, { sub: 'lab-a' });
    const labB = await jwt(all, { sub: 'lab-b' });
    const sr = serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: randomUUID() } } });
    const placed = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr, token: labA });
    expect(placed.status).toBe(201);
    const id = placed.body.id as string;
    await addReport(id);

    // Lab B: every read answers as if the order did not exist.
    for (const path of [`Task/${id}`, `ServiceRequest/${id}`, `DiagnosticReport/${id}`]) {
      const r = await fhirFetch(`${base}/fhir/${path}`, { token: labB });
      expect([path, r.status, r.body.issue?.[0]?.code]).toEqual([path, 404, 'not-found']);
    }
    for (const search of [
      `Task?focus=ServiceRequest/${id}`,
      `Task?_id=${id}`,
      `DiagnosticReport?based-on=ServiceRequest/${id}`,
      `DiagnosticReport?_id=${id}`,
    ]) {
      const r = await fhirFetch(`${base}/fhir/${search}`, { token: labB });
      expect([search, r.status, r.body.total]).toEqual([search, 200, 0]);
    }
    // ...cannot cancel it (nothing to cancel, as for an unknown identifier)...
    const revoke = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...sr, status: 'revoked' }, token: labB });
    expect(revoke.status).toBe(422);
    expect(revoke.body.issue[0].diagnostics).toMatch(/no order with this identifier/);
    // ...and does not get it back by sending the same identifier: refused, without the order or its id.
    const same = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr, token: labB });
    expect(same.status).toBe(409);
    expect(same.body.issue[0]).toMatchObject({ code: 'duplicate', expression: ['ServiceRequest.identifier'] });
    expect(JSON.stringify(same.body)).not.toContain(id);
    const named = await fhirFetch(`${base}/fhir/Task/${id}`, { token: OTHER_LAB_KEY });
    expect(named.status).toBe(404);

    // Lab A, the EHR-wide bare key and the EHR-wide named client `ops` see it.
    for (const token of [labA, API_KEY, OPS_KEY]) {
      expect((await fhirFetch(`${base}/fhir/Task/${id}`, { token })).status).toBe(200);
      expect((await fhirFetch(`${base}/fhir/DiagnosticReport/${id}`, { token })).status).toBe(200);
      expect((await fhirFetch(`${base}/fhir/Task?focus=ServiceRequest/${id}`, { token })).body.total).toBe(1);
    }
    const [row] = await ds.query(`SELECT status, source_client FROM orders WHERE id = $1`, [id]);
    expect(row).toEqual({ status: expect.not.stringMatching(/^cancelled$/), source_client: 'jwt:lab-a' });

    // Lab A cancels its own order; the timeline says who.
    const own = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...sr, status: 'revoked' }, token: labA });
    expect(own.status).toBe(200);
    expect(own.body.status).toBe('cancelled');
    const events = await ds.query(`SELECT actor, to_status FROM order_events WHERE order_id = $1 ORDER BY id`, [id]);
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ actor: 'fhir:jwt:lab-a', to_status: 'received' }),
        expect.objectContaining({ actor: 'fhir:jwt:lab-a', to_status: 'cancelled' }),
      ]),
    );
  });

  it('names the client of a name:key API key on its orders, its request and its timeline; it sees only its own orders', async () => {
    const mine = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: randomUUID() } } }),
      token: LAB_KEY,
    });
    expect(mine.status).toBe(201);
    const [row] = await ds.query(
      `SELECT o.source_client, m.sender, e.actor FROM orders o JOIN inbound_messages m ON m.id = o.inbound_message_id
         JOIN order_events e ON e.order_id = o.id WHERE o.id = $1`,
      [mine.body.id],
    );
    expect(row).toEqual({ source_client: 'lab-k', sender: 'lab-k', actor: 'fhir:lab-k' });
    expect((await fhirFetch(`${base}/fhir/Task/${mine.body.id}`, { token: LAB_KEY })).status).toBe(200);

    const theirs = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: randomUUID() } } }),
      token: OTHER_LAB_KEY,
    });
    expect(theirs.status).toBe(201);
    expect((await fhirFetch(`${base}/fhir/Task/${theirs.body.id}`, { token: LAB_KEY })).status).toBe(404);
    expect((await fhirFetch(`${base}/fhir/ServiceRequest/${theirs.body.id}`, { token: LAB_KEY })).status).toBe(404);
    // The key alone authenticates; `name:key` as a whole is not a key.
    expect((await fhirFetch(`${base}/fhir/Task/${mine.body.id}`, { token: `lab-k:${LAB_KEY}` })).status).toBe(401);
  });

  it('takes only SMART system/ scopes, in v1 (.read/.write) or v2 (.c, .rs, .cruds) syntax: patient/ and user/ scopes are refused with 403', async () => {
    const sr = () => serviceRequest({ subject: { identifier: { system: 'urn:mrn', value: randomUUID() } } });
    const post = async (scope: string) =>
      fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr(), token: await jwt(scope, { sub: 'scoped-app' }) });

    for (const scope of ['patient/ServiceRequest.write', 'patient/*.cruds', 'user/ServiceRequest.c', 'user/*.*']) {
      const r = await post(scope);
      expect([scope, r.status, r.body.issue?.[0]?.code]).toEqual([scope, 403, 'forbidden']);
      expect(r.body.issue[0].diagnostics).toMatch(/Only SMART system\/ scopes are accepted/);
      expect(fhirValidationErrors(r.body)).toEqual([]);
    }
    for (const scope of ['system/ServiceRequest.rs', 'system/ServiceRequest.u', 'system/ServiceRequest.c?category=x']) {
      const r = await post(scope);
      expect([scope, r.status, r.body.issue?.[0]?.code]).toEqual([scope, 403, 'forbidden']);
    }
    for (const scope of [
      'system/ServiceRequest.c',
      'system/ServiceRequest.cruds',
      'system/*.write',
      'system/ServiceRequest.*',
    ]) {
      expect([scope, (await post(scope)).status]).toEqual([scope, 201]);
    }

    // Reads: a patient/ token sees nothing, even of its own client's orders; system/ .r reads, .s searches.
    const placed = await post('system/ServiceRequest.c');
    const id = placed.body.id as string;
    const get = async (path: string, scope: string) =>
      fhirFetch(`${base}/fhir/${path}`, { token: await jwt(scope, { sub: 'scoped-app' }) });
    for (const scope of ['patient/*.read', 'patient/Task.rs', 'user/Task.read']) {
      const r = await get(`Task/${id}`, scope);
      expect([scope, r.status, r.body.issue?.[0]?.code]).toEqual([scope, 403, 'forbidden']);
      expect(r.body.issue[0].diagnostics).toMatch(/Only SMART system\/ scopes are accepted/);
    }
    expect((await get(`Task/${id}`, 'system/Task.r')).status).toBe(200);
    expect((await get(`Task?_id=${id}`, 'system/Task.r')).status).toBe(403);
    expect((await get(`Task?_id=${id}`, 'system/Task.s')).body.total).toBe(1);
    expect((await get(`ServiceRequest/${id}`, 'system/ServiceRequest.read')).status).toBe(200);
    expect((await get(`ServiceRequest/${id}`, 'system/Task.rs')).status).toBe(403);
  });
});
