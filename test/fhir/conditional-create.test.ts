/*
 * FHIR conditional create naming no system (`If-None-Exist: identifier=<value>`): the value is matched under
 * any system, through an index (it once scanned every order), among the caller's own orders only (it once
 * fetched 20 orders of any client and filtered them afterwards, so a client whose value other clients used
 * 20 times more did not find its own order and stored it a second time).
 */
import { randomUUID } from 'node:crypto';
import type { DataSource, Logger } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { DataSource as DataSourceToken } from 'typeorm';
import { fhirFetch, serviceRequest, startGateway } from './fhir-helpers';

const LAB_K = 'cc-lab-k-key-0123456789';
const LAB_M = 'cc-lab-m-key-0123456789';
const OPS = 'cc-ops-key-0123456789';

describe('FHIR If-None-Exist identifier=value (any system)', () => {
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;

  beforeAll(async () => {
    ({ gw, ds, base } = await startGateway('fhircondcreate', {
      FHIR_API_KEYS: `lab-k:${LAB_K},lab-m:${LAB_M},ops:${OPS}`,
      FHIR_ADMIN_CLIENTS: 'ops',
    }));
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
  });

  const post = (body: unknown, token: string, ifNoneExist?: string) =>
    fhirFetch(`${base}/fhir/ServiceRequest`, {
      body,
      token,
      headers: ifNoneExist ? { 'if-none-exist': ifNoneExist } : {},
    });
  const sr = (system: string, value: string) =>
    serviceRequest({
      identifier: [{ system, value }],
      subject: { identifier: { system: 'urn:mrn', value: randomUUID() } },
    });
  const ordersOf = async (client: string, value: string) =>
    (
      await ds.query(
        `SELECT count(*)::int AS n FROM orders WHERE source_client = $1 AND external_key LIKE 'fhir:%' AND external_key LIKE $2`,
        [client, `%|${value}`],
      )
    )[0].n as number;

  /** The SQL statements the gateway sends while `fn` runs (its own data source, passed through unchanged). */
  async function queriesDuring(fn: () => Promise<unknown>): Promise<Array<{ sql: string; params: unknown[] }>> {
    const gwDs = gw.app.get(DataSourceToken);
    const original = gwDs.logger;
    const seen: Array<{ sql: string; params: unknown[] }> = [];
    const recording: Logger = Object.assign(Object.create(original) as Logger, {
      logQuery: (sql: string, params?: unknown[]) => {
        seen.push({ sql, params: params ?? [] });
      },
    });
    (gwDs as { logger: Logger }).logger = recording;
    try {
      await fn();
    } finally {
      (gwDs as { logger: Logger }).logger = original;
    }
    return seen;
  }

  it('finds the value through an index, not a scan of every order', async () => {
    // Enough FHIR orders that the planner's choice is real (no planner settings changed).
    await ds.query(
      `INSERT INTO orders (status, source_channel, source_client, filler_order_number, external_key)
       SELECT 'cancelled', 'fhir', 'seed', 'CC-SEED-' || n, 'fhir:urn:seed:' || (n % 50) || '|SEED-' || n
         FROM generate_series(1, 20000) AS n`,
    );
    await ds.query(`ANALYZE orders`);
    const value = `IDX-${randomUUID()}`;
    const first = await post(sr('urn:k:1', value), LAB_K);
    expect(first.status).toBe(201);

    let again: Awaited<ReturnType<typeof post>> | undefined;
    const queries = await queriesDuring(async () => {
      again = await post(sr('urn:k:other', value), LAB_K, `identifier=${value}`);
    });
    expect(again!.status).toBe(200);
    expect(again!.body.id).toBe(first.body.id);
    expect(await ordersOf('lab-k', value)).toBe(1);

    // The lookup by value: the one statement on orders that matches FHIR keys by pattern.
    const lookup = queries.filter((q) => /FROM "orders"/.test(q.sql) && /LIKE 'fhir:/.test(q.sql));
    expect(lookup).toHaveLength(1);
    const plan = ((await ds.query(`EXPLAIN ${lookup[0]!.sql}`, lookup[0]!.params)) as Array<{ 'QUERY PLAN': string }>)
      .map((r) => r['QUERY PLAN'])
      .join('\n');
    expect(plan).toMatch(/ix_orders_fhir_identifier_value/);
    expect(plan).not.toMatch(/Seq Scan/);
  });

  it("counts only the caller's own orders, however many other clients used the value", async () => {
    const value = `SHARED-${randomUUID()}`;
    // Another client's 25 orders with this value come first.
    for (let i = 0; i < 25; i++) expect((await post(sr(`urn:m:${i}`, value), LAB_M)).status).toBe(201);
    const own = await post(sr('urn:k:1', value), LAB_K);
    expect(own.status).toBe(201);

    // Its own order is found (it was not: a second order was stored).
    const again = await post(sr('urn:k:2', value), LAB_K, `identifier=${value}`);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(own.body.id);
    expect(await ordersOf('lab-k', value)).toBe(1);

    // Two of its own: 412, nothing stored.
    expect((await post(sr('urn:k:3', value), LAB_K)).status).toBe(201);
    const ambiguous = await post(sr('urn:k:4', value), LAB_K, `identifier=${value}`);
    expect(ambiguous.status).toBe(412);
    expect(ambiguous.body.resourceType).toBe('OperationOutcome');
    expect(ambiguous.body.issue[0].code).toBe('multiple-matches');
    expect(await ordersOf('lab-k', value)).toBe(2);

    // An EHR-wide caller sees every client's orders: 412 as well.
    expect((await post(sr('urn:ops:1', value), OPS, `identifier=${value}`)).status).toBe(412);

    // A client none of whose orders has the value stores a new order (others' orders are not matches).
    const fresh = `ONLY-M-${randomUUID()}`;
    expect((await post(sr('urn:m:x', fresh), LAB_M)).status).toBe(201);
    const newForK = await post(sr('urn:k:x', fresh), LAB_K, `identifier=${fresh}`);
    expect(newForK.status).toBe(201);
    expect(await ordersOf('lab-k', fresh)).toBe(1);
  });
});
