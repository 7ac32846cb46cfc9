/*
 * FHIR search paging while orders arrive. Offset paging (`next` carried `_offset`) repeated or skipped
 * entries whenever a match appeared before the page a client had reached: an order whose intake transaction
 * started before others but committed after them (its created_at is the transaction's start), or a report
 * arriving for an older order in a DiagnosticReport search. `next`/`previous` now carry a signed keyset
 * cursor (`_cursor`): every match that existed when paging began is visited exactly once.
 */
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { addStoredReport, fhirFetch, patient, serviceRequest, startGateway } from './fhir-helpers';

const PLACER = 'urn:oid:1.2.3.4.placer';

describe('FHIR search paging', () => {
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;

  beforeAll(async () => {
    ({ gw, ds, base } = await startGateway('fhirpaging'));
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
  });

  /** An order for the EHR's ServiceRequest `srId` (so `focus=ServiceRequest/<srId>` finds its Task). */
  const order = (srId: string, placer = `PG-${srId}`) =>
    serviceRequest({
      id: srId,
      identifier: [{ system: PLACER, value: placer }],
      // A patient of its own: a shared one would make every intake wait on the slow one's patient row.
      contained: [{ ...patient('pc', `MRN-${srId}`), id: 'pat' }],
      subject: { reference: '#pat' },
    });
  const post = async (srId: string, placer?: string) => {
    const r = await fhirFetch(`${base}/fhir/ServiceRequest`, { body: order(srId, placer) });
    expect([srId, r.status]).toEqual([srId, 201]);
    return r.body.id as string;
  };
  const addReport = (orderId: string) => addStoredReport(ds, orderId);
  const link = (b: any, rel: string): string | undefined =>
    b.link?.find((l: { relation: string }) => l.relation === rel)?.url;
  const idsOf = (b: any): string[] =>
    (b.entry ?? []).filter((e: any) => e.search?.mode === 'match').map((e: any) => e.resource.id);
  const get = async (url: string, headers: Record<string, string> = {}) => {
    const r = await fhirFetch(url, { headers });
    expect([url, r.status]).toEqual([url, 200]);
    expect(r.body.type).toBe('searchset');
    return r.body;
  };
  /** Follows `next` links from `url`, calling `between(n)` after the n-th page; every id seen, in order. */
  const follow = async (url: string, between: (n: number) => Promise<void> = async () => {}) => {
    const seen: string[] = [];
    const pages: any[] = [];
    for (let next: string | undefined = url, n = 1; next; n++) {
      expect(n).toBeLessThan(20);
      const page = await get(next);
      pages.push(page);
      seen.push(...idsOf(page));
      next = link(page, 'next');
      if (next) await between(n);
    }
    return { seen, pages };
  };
  const occurrences = (seen: string[], id: string) => seen.filter((x) => x === id).length;

  it('visits every Task that existed when paging began exactly once while orders arrive, one committing late', async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const sr = (n: string) => `pg-${tag}-${n}`;
    // A slow intake: its transaction starts now, then waits on a row the test holds (the same identifier,
    // not yet committed), so its order commits after the others with an earlier created_at.
    const blocker = ds.createQueryRunner();
    await blocker.connect();
    await blocker.startTransaction();
    await blocker.query(
      `INSERT INTO orders (status, source_channel, filler_order_number, external_key) VALUES ('accepted', 'fhir', $1, $2)`,
      [`BLOCK-${tag}`, `fhir:${PLACER}|SLOW-${tag}`],
    );
    const late = fhirFetch(`${base}/fhir/ServiceRequest`, { body: order(sr('late'), `SLOW-${tag}`) });
    for (let i = 0; ; i++) {
      const [{ n }] = await ds.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
      );
      if (n > 0) break;
      expect(i).toBeLessThan(200);
      await new Promise((r) => setTimeout(r, 25));
    }

    const existing: string[] = [];
    for (const n of ['1', '2', '3', '4', '5']) existing.push(await post(sr(n)));
    const focus = ['1', '2', '3', '4', '5', 'late', '6', '7'].map((n) => `ServiceRequest/${sr(n)}`).join(',');
    let lateId = '';
    const { seen, pages } = await follow(`${base}/fhir/Task?focus=${focus}&_count=2`, async (n) => {
      if (n === 1) {
        await blocker.rollbackTransaction();
        await blocker.release();
        const r = await late;
        expect(r.status).toBe(201);
        lateId = r.body.id;
        await post(sr('6'));
      }
      if (n === 2) await post(sr('7'));
    });
    // The late order really sorts before what the first page showed (else this test proves nothing).
    const [{ before }] = await ds.query(
      `SELECT (SELECT created_at FROM orders WHERE id = $1) < (SELECT created_at FROM orders WHERE id = $2) AS before`,
      [lateId, existing[0]],
    );
    expect(before).toBe(true);
    for (const id of existing) expect([id, occurrences(seen, id)]).toEqual([id, 1]);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.slice(0, 5)).toEqual(existing);
    // total counts every match at the time of each page (the last: the five, the late one and two more).
    expect(pages[0].total).toBe(5);
    expect(pages.at(-1).total).toBe(8);
    expect(link(pages[0], 'next')).toContain('_cursor=');
    expect(link(pages[0], 'next')).not.toContain('_offset=');
  });

  it('visits every DiagnosticReport exactly once when a report arrives for an older order meanwhile', async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const ids: string[] = [];
    for (const n of ['1', '2', '3', '4', '5', '6']) ids.push(await post(`dr-${tag}-${n}`));
    const withReport = [ids[0]!, ids[2]!, ids[4]!, ids[5]!];
    for (const id of withReport) await addReport(id);
    const basedOn = ids.map((id) => `ServiceRequest/${id}`).join(',');
    const { seen } = await follow(`${base}/fhir/DiagnosticReport?based-on=${basedOn}&_count=2`, async (n) => {
      if (n === 1) await addReport(ids[1]!);
    });
    for (const id of withReport) expect([id, occurrences(seen, id)]).toEqual([id, 1]);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('walks back by previous links, keeps _offset working, and refuses a tampered or foreign cursor with 400', async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const ids: string[] = [];
    for (const n of ['1', '2', '3', '4', '5']) ids.push(await post(`bk-${tag}-${n}`));
    const search = `${base}/fhir/Task?_id=${ids.join(',')}&_count=2`;
    const forward = await follow(search);
    expect(forward.pages.map(idsOf)).toEqual([ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)]);
    expect(link(forward.pages[0], 'previous')).toBeUndefined();

    // previous links from the last page give the same pages backwards, the first with no previous.
    const backward: string[][] = [];
    let prev: string | undefined = link(forward.pages.at(-1), 'previous');
    for (let n = 0; prev; n++) {
      expect(n).toBeLessThan(10);
      const page = await get(prev);
      backward.push(idsOf(page));
      expect(page.total).toBe(5);
      prev = link(page, 'previous');
    }
    expect(backward).toEqual([ids.slice(2, 4), ids.slice(0, 2)]);
    // A page reached backwards leads forward again.
    const back = await get(link(forward.pages.at(-1), 'previous')!);
    expect(idsOf(await get(link(back, 'next')!))).toEqual(ids.slice(4));

    // _offset still starts a page where it says; its next link goes on from there by cursor.
    const offset = await get(`${search}&_offset=1`);
    expect(idsOf(offset)).toEqual(ids.slice(1, 3));
    expect(new URL(link(offset, 'self')!).searchParams.get('_offset')).toBe('1');
    expect(idsOf(await get(link(offset, 'next')!))).toEqual(ids.slice(3, 5));
    expect(idsOf(await get(link(offset, 'previous')!))).toEqual(ids.slice(0, 1));

    // The cursor is a known parameter: handling=strict answers as usual.
    const next = link(forward.pages[0], 'next')!;
    const strict = await get(next, { prefer: 'handling=strict' });
    expect(idsOf(strict)).toEqual(ids.slice(2, 4));

    const cursor = new URL(next).searchParams.get('_cursor')!;
    const withCursor = (c: string, url = search) => `${url}&_cursor=${encodeURIComponent(c)}`;
    // Its position edited (one character of the key changed), its signature edited, nonsense, or a cursor
    // of another search: 400 OperationOutcome, never a page from somewhere else.
    const [payload, sig] = cursor.split('.') as [string, string];
    const edit = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    for (const bad of [`${edit(payload, 5)}.${sig}`, `${payload}.${edit(sig, 3)}`, 'not-a-cursor', `${payload}.`]) {
      const r = await fhirFetch(withCursor(bad));
      expect([bad, r.status]).toEqual([bad, 400]);
      expect(r.body.resourceType).toBe('OperationOutcome');
      expect(r.body.issue[0].severity).toBe('error');
    }
    const other = await fhirFetch(withCursor(cursor, `${base}/fhir/Task?_id=${ids.slice(1).join(',')}&_count=2`));
    expect(other.status).toBe(400);
    expect(other.body.resourceType).toBe('OperationOutcome');
    // A cursor and an offset at once: which page is meant is unclear.
    expect((await fhirFetch(`${withCursor(cursor)}&_offset=2`)).status).toBe(400);
  });
});
