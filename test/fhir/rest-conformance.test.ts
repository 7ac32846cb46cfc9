/*
 * FHIR REST conformance (found by a probe; each case failed before its fix): a format we do not serve
 * (XML) answers 406, not JSON; Location names the ServiceRequest's current version and ETags are versions
 * (none on a Task, a searchset or an OperationOutcome); a search names in its `self` link the parameters it
 * applied (an unknown one is ignored, or refused with 400 under `Prefer: handling=strict`), and every
 * parameter the CapabilityStatement lists works, combined with the others; `_count` pages a search and
 * `next` links reach every match (it stopped at 100, silently).
 */
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { addStoredReport, fhirFetch, patient, serviceRequest, startGateway } from './fhir-helpers';

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

  it('lets no cache keep an answer (it carries patient data) and no browser sniff it as another type', async () => {
    const created = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: order() });
    expect(created.status).toBe(201);
    for (const url of [
      `${base}/fhir/ServiceRequest/${created.body.id}`,
      `${base}/fhir/ServiceRequest?_id=${created.body.id}`,
      `${base}/fhir/Task/${created.body.id}`,
      `${base}/fhir/ServiceRequest/no-such-id`,
    ]) {
      const r = await fhirFetch(url);
      expect([url, r.headers.get('cache-control')]).toEqual([url, 'no-store']);
      expect([url, r.headers.get('x-content-type-options')]).toEqual([url, 'nosniff']);
    }
    expect(created.headers.get('cache-control')).toBe('no-store');
  });

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
    // DSTU2's JSON media type, still sent by older clients, is read as FHIR JSON.
    const dstu2 = await fhirFetch(`${base}/fhir/ServiceRequest`, {
      body: order(),
      headers: { 'content-type': 'application/json+fhir; charset=utf-8' },
    });
    expect(dstu2.status).toBe(201);
  });

  it('names the current version in Location when a repeat or a revoke answers 200, and gives ETags only to versioned resources', async () => {
    const sr = order();
    const created = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const url = `${base}/fhir/ServiceRequest/${id}`;
    expect(created.headers.get('location')).toBe(`${url}/_history/1`);
    const revoked = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...sr, status: 'revoked' } });
    expect(revoked.status).toBe(200);
    expect((await fhirFetch(url)).body.meta.versionId).toBe('2');
    expect(revoked.headers.get('location')).toBe(`${url}/_history/2`);
    // The same revoke again, in every form of answer, and in a Bundle entry: still version 2.
    for (const prefer of [undefined, 'return=minimal', 'return=OperationOutcome', 'return=representation']) {
      const again = await fhirFetch(`${base}/fhir/ServiceRequest`, {
        body: { ...sr, status: 'revoked' },
        headers: prefer ? { prefer } : {},
      });
      expect([prefer, again.status, again.headers.get('location')]).toEqual([prefer, 200, `${url}/_history/2`]);
    }
    const batch = await fhirFetch(`${base}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type: 'batch',
        entry: [{ resource: { ...sr, status: 'revoked' }, request: { method: 'POST', url: 'ServiceRequest' } }],
      },
    });
    expect(batch.body.entry[0].response.location).toBe(`${url}/_history/2`);
    expect((await fhirFetch(batch.body.entry[0].response.location)).body).toMatchObject({ status: 'revoked' });

    // ETag: the version where there is one; none on what has no version.
    expect((await fhirFetch(url)).headers.get('etag')).toBe('W/"2"');
    const noEtag: Array<[string, { status: number; headers: Headers; body: any }]> = [
      ['Task', await fhirFetch(`${base}/fhir/Task/${id}`)],
      ['searchset', await fhirFetch(`${base}/fhir/Task?_id=${id}`)],
      [
        'repeat answering the Task',
        await fhirFetch(`${base}/fhir/ServiceRequest`, { body: { ...sr, status: 'revoked' } }),
      ],
      ['404', await fhirFetch(`${base}/fhir/Task/00000000-0000-4000-8000-000000000000`)],
      ['unknown path', await fhirFetch(`${base}/fhir/Nothing`)],
      ['401', await fhirFetch(`${base}/fhir/Task/${id}`, { token: 'wrong-key-0123456789' })],
      ['406', await fhirFetch(`${base}/fhir/metadata?_format=xml`)],
      ['metadata', await fhirFetch(`${base}/fhir/metadata`)],
    ];
    for (const [what, r] of noEtag) {
      expect([what, r.headers.get('etag')]).toEqual([what, null]);
      expect(r.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
      expect(r.body.resourceType).toBeDefined();
    }
    expect(noEtag[1]![1].body.type).toBe('searchset');

    // A DiagnosticReport's version is its report's: a revision is W/"2".
    for (const version of [1, 2]) {
      await addStoredReport(ds, id, version);
      const dr = await fhirFetch(`${base}/fhir/DiagnosticReport/${id}`);
      expect(dr.body.meta.versionId).toBe(String(version));
      expect(dr.headers.get('etag')).toBe(`W/"${version}"`);
    }
  });

  const addReport = (orderId: string, version = 1) => addStoredReport(ds, orderId, version);

  it('applies every search parameter it lists, names the applied ones in the self link, ignores unknown ones or refuses them under handling=strict', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: order() });
      expect(r.status).toBe(201);
      ids.push(r.body.id);
      await addReport(r.body.id);
    }
    const [a, b] = ids as [string, string];
    const found = (r: { body: any }) => (r.body.entry ?? []).map((e: any) => e.resource.id).sort();

    // The probe's case: status is no parameter of ours. Ignored (the Task is in another status), and the
    // self link says so: only focus was applied.
    const lenient = await fhirFetch(`${base}/fhir/Task?focus=ServiceRequest/${a}&status=cancelled`);
    expect(lenient.status).toBe(200);
    expect(lenient.headers.get('etag')).toBeNull();
    const self = lenient.body.link?.find((l: { relation: string }) => l.relation === 'self')?.url as string;
    expect(self).toBeDefined();
    const selfUrl = new URL(self);
    expect(`${selfUrl.origin}${selfUrl.pathname}`).toBe(`${base}/fhir/Task`);
    expect(selfUrl.searchParams.get('focus')).toBe(`ServiceRequest/${a}`);
    expect(selfUrl.searchParams.has('status')).toBe(false);
    // And an outcome entry says so in words; it is no match (total and the match entries are the Tasks alone).
    const outcomes = lenient.body.entry.filter((e: { search?: { mode?: string } }) => e.search?.mode === 'outcome');
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0].resource.resourceType).toBe('OperationOutcome');
    expect(outcomes[0].resource.issue[0]).toMatchObject({ severity: 'warning', code: 'not-supported' });
    expect(outcomes[0].resource.issue[0].diagnostics).toContain('status');
    expect(lenient.body.entry.filter((e: { search?: { mode?: string } }) => e.search?.mode === 'match')).toHaveLength(
      lenient.body.total,
    );
    // Under handling=strict: 400, naming the parameter.
    for (const prefer of ['handling=strict', 'return=minimal, handling=strict']) {
      const strict = await fhirFetch(`${base}/fhir/Task?focus=ServiceRequest/${a}&status=cancelled`, {
        headers: { prefer },
      });
      expect(strict.status).toBe(400);
      expect(strict.body.resourceType).toBe('OperationOutcome');
      expect(JSON.stringify(strict.body.issue)).toContain('status');
    }
    const strictDr = await fhirFetch(`${base}/fhir/DiagnosticReport?_id=${a}&based-on:missing=false`, {
      headers: { prefer: 'handling=strict' },
    });
    expect(strictDr.status).toBe(400);
    expect(JSON.stringify(strictDr.body.issue)).toContain('based-on:missing');
    // Known parameters only, strict: answered as usual.
    expect(
      (await fhirFetch(`${base}/fhir/Task?_id=${a}&_format=json`, { headers: { prefer: 'handling=strict' } })).status,
    ).toBe(200);

    // Every parameter the CapabilityStatement lists works, alone, OR-ed (a,b) and AND-ed with the others.
    const cs = await fhirFetch(`${base}/fhir/metadata`);
    const ref = (id: string) => `ServiceRequest/${id}`;
    const value: Record<string, (id: string) => string> = { _id: (id) => id, focus: ref, 'based-on': ref };
    for (const type of ['Task', 'DiagnosticReport']) {
      const params = cs.body.rest[0].resource.find((r: { type: string }) => r.type === type).searchParam as Array<{
        name: string;
      }>;
      expect(params.length).toBeGreaterThan(0);
      for (const { name } of params) {
        expect(Object.keys(value)).toContain(name);
        const v = value[name]!;
        const one = await fhirFetch(`${base}/fhir/${type}?${name}=${v(a)}`);
        expect([type, name, one.status, found(one)]).toEqual([type, name, 200, [a]]);
        expect(one.body.total).toBe(1);
        expect(new URL(one.body.link[0].url).searchParams.get(name)).toBe(v(a));
        const both = await fhirFetch(`${base}/fhir/${type}?${name}=${v(a)},${v(b)}`);
        expect([type, name, found(both)]).toEqual([type, name, [a, b].sort()]);
        for (const { name: other } of params.filter((p) => p.name !== name)) {
          // name=a AND other=b matches nothing; name=a AND other=a matches a.
          const none = await fhirFetch(`${base}/fhir/${type}?${name}=${v(a)}&${other}=${value[other]!(b)}`);
          expect([type, name, other, none.status, none.body.total]).toEqual([type, name, other, 200, 0]);
          const same = await fhirFetch(`${base}/fhir/${type}?${name}=${v(a)}&${other}=${value[other]!(a)}`);
          expect([type, name, other, found(same)]).toEqual([type, name, other, [a]]);
          const sameSelf = new URL(same.body.link[0].url).searchParams;
          expect([sameSelf.get(name), sameSelf.get(other)]).toEqual([v(a), value[other]!(a)]);
        }
      }
    }
  });

  it('pages a search by _count with next links to every match, a correct total, and _count=0 for the total alone', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 105; i++) {
      const r = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: order() });
      expect(r.status).toBe(201);
      ids.push(r.body.id);
    }
    const link = (b: any, rel: string) => b.link?.find((l: { relation: string }) => l.relation === rel)?.url;
    const follow = async (url: string) => {
      const seen: string[] = [];
      const pages: any[] = [];
      for (let next: string | undefined = url, n = 0; next && n < 20; n++) {
        const page = await fhirFetch(next);
        expect([next, page.status]).toEqual([next, 200]);
        expect(page.body.type).toBe('searchset');
        expect(link(page.body, 'self')).toBeDefined();
        pages.push(page.body);
        seen.push(...(page.body.entry ?? []).map((e: any) => e.resource.id));
        next = link(page.body, 'next');
        if (next) expect(next.startsWith(`${base}/fhir/Task?`)).toBe(true);
      }
      return { seen, pages };
    };

    // No _count: every one of the 105 matches is reached through next links, each once; total is right.
    const all = await follow(`${base}/fhir/Task?_id=${ids.join(',')}`);
    expect(all.seen.sort()).toEqual([...ids].sort());
    expect(all.pages.length).toBeGreaterThan(1);
    for (const p of all.pages) expect(p.total).toBe(105);
    expect(link(all.pages.at(-1), 'next')).toBeUndefined();

    // _count=2 over five: pages of 2, 2, 1, the self link naming _count.
    const five = ids.slice(0, 5);
    const small = await follow(`${base}/fhir/Task?_id=${five.join(',')}&_count=2`);
    expect(small.pages.map((p) => p.entry?.length ?? 0)).toEqual([2, 2, 1]);
    expect(small.seen).toEqual(five);
    expect(new URL(link(small.pages[0], 'self')).searchParams.get('_count')).toBe('2');
    for (const p of small.pages) expect(p.total).toBe(5);

    // _count=0: the total alone.
    const count = await fhirFetch(`${base}/fhir/Task?_id=${five.join(',')}&_count=0`);
    expect(count.status).toBe(200);
    expect(count.body.total).toBe(5);
    expect(count.body.entry ?? []).toEqual([]);
    // _summary=count says the same (and says so in its self link); _summary=false is the full search; others 400.
    const summary = await fhirFetch(`${base}/fhir/Task?_id=${five.join(',')}&_summary=count`);
    expect(summary.status).toBe(200);
    expect(summary.body.total).toBe(5);
    expect(summary.body.entry ?? []).toEqual([]);
    expect(new URL(link(summary.body, 'self')).searchParams.get('_summary')).toBe('count');
    const full = await fhirFetch(`${base}/fhir/Task?_id=${five.join(',')}&_summary=false`);
    expect(full.body.entry).toHaveLength(5);
    const text = await fhirFetch(`${base}/fhir/Task?_id=${five[0]}&_summary=text`);
    expect(text.status).toBe(400);
    expect(text.body.issue[0].diagnostics).toMatch(/_summary=text is not supported/);

    // A _count that is no non-negative integer is refused.
    expect((await fhirFetch(`${base}/fhir/Task?_id=${five[0]}&_count=abc`)).status).toBe(400);
    expect((await fhirFetch(`${base}/fhir/Task?_id=${five[0]}&_count=-1`)).status).toBe(400);
  });
});
