import { randomUUID } from 'node:crypto';
import { createDataSource, MIGRATIONS, OrderEntity, revertLastMigration, runMigrations } from '@hemato/persistence';
import { createTestDatabase } from '@hemato/testing';
import { Client } from 'pg';
import type { DataSource } from 'typeorm';

const TABLES = [
  'patient_proxies',
  'inbound_messages',
  'orders',
  'order_events',
  'image_files',
  'reports',
  'deliveries',
];

async function tables(ds: DataSource): Promise<string[]> {
  const rows: Array<{ table_name: string }> = await ds.query(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`,
  );
  return rows.map((r) => r.table_name);
}

describe('migrations', () => {
  let ds: DataSource;
  let url: string;
  beforeAll(async () => {
    url = await createTestDatabase('migrations');
    ds = await createDataSource({ url }).initialize();
  });
  afterAll(async () => ds?.destroy());

  it('apply on an empty database, create the schema, and revert all the way down and up again', async () => {
    const applied = await runMigrations(ds);
    expect(applied).toEqual(MIGRATIONS.map((m) => m.name));
    expect(await tables(ds)).toEqual(expect.arrayContaining(TABLES));
    expect(await runMigrations(ds)).toEqual([]);

    for (let i = 0; i < MIGRATIONS.length; i++) await revertLastMigration(ds);
    const left = await tables(ds);
    for (const t of TABLES) expect(left).not.toContain(t);

    expect(await runMigrations(ds)).toHaveLength(MIGRATIONS.length);
    expect(await tables(ds)).toEqual(expect.arrayContaining(TABLES));
  });

  it('serves the dashboard and intake lookups from indexes', async () => {
    const rows: Array<{ indexname: string }> = await ds.query(
      `SELECT indexname FROM pg_indexes WHERE tablename = 'orders'`,
    );
    expect(rows.map((r) => r.indexname)).toEqual(
      expect.arrayContaining(['ix_orders_status_created_id', 'ix_orders_created_id', 'ix_orders_placer_prefix']),
    );
    // Each lookup has an index path (sequential scans off: on an empty table the planner would prefer one).
    const plan = async (sql: string, params: unknown[]) => {
      const qr = ds.createQueryRunner();
      try {
        await qr.query('SET enable_seqscan = off');
        const out: Array<{ 'QUERY PLAN': string }> = await qr.query(`EXPLAIN ${sql}`, params);
        return out.map((r) => r['QUERY PLAN']).join('\n');
      } finally {
        await qr.query('RESET enable_seqscan');
        await qr.release();
      }
    };
    expect(await plan(`SELECT id FROM orders WHERE placer_order_number = $1`, ['PL-1'])).toMatch(/Index/);
    expect(
      await plan(`SELECT id FROM orders WHERE status = $1 ORDER BY created_at DESC, id DESC LIMIT 50`, ['failed']),
    ).toMatch(/ix_orders_status_created_id/);
    expect(await plan(`SELECT id FROM orders ORDER BY created_at DESC, id DESC LIMIT 50`, [])).toMatch(
      /ix_orders_created_id/,
    );
    expect(await plan(`SELECT id FROM orders WHERE patient_proxy_id = $1`, [randomUUID()])).toMatch(
      /ix_orders_patient_proxy/,
    );
  });

  it('keeps the order timeline append-only and inbound messages unique per sender + control id', async () => {
    await ds.query(
      `INSERT INTO orders (id, status, source_channel, filler_order_number) VALUES (gen_random_uuid(), 'received', 'hl7', 'F1')`,
    );
    const [{ id }] = await ds.query(`SELECT id FROM orders WHERE filler_order_number = 'F1'`);
    await ds.query(`INSERT INTO order_events (order_id, type, actor) VALUES ($1, 'note', 'test')`, [id]);
    await expect(ds.query(`UPDATE order_events SET actor = 'someone else'`)).rejects.toThrow(/append-only/);

    await ds.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, raw) VALUES ('hl7', 'LIS|LAB', 'C1', 'x')`,
    );
    await expect(
      ds.query(`INSERT INTO inbound_messages (channel, sender, control_id, raw) VALUES ('hl7', 'LIS|LAB', 'C1', 'y')`),
    ).rejects.toThrow(/uq_inbound_sender_control/);
  });

  it('keeps the audit log append-only: UPDATE, DELETE and TRUNCATE are refused', async () => {
    await ds.query(`INSERT INTO audit_log (user_id, user_email, action) VALUES (NULL, 'a@lab.example', 'auth.login')`);
    await expect(ds.query(`UPDATE audit_log SET action = 'nothing'`)).rejects.toThrow(/append-only/);
    await expect(ds.query(`DELETE FROM audit_log`)).rejects.toThrow(/append-only/);
    await expect(ds.query(`TRUNCATE audit_log`)).rejects.toThrow(/append-only/);
    const rows: Array<{ n: string }> = await ds.query(`SELECT count(*) AS n FROM audit_log`);
    expect(Number(rows[0]!.n)).toBe(1);
  });

  it('bumps the optimistic version on every save', async () => {
    const repo = ds.getRepository(OrderEntity);
    const order = await repo.save(
      repo.create({ status: 'received' as never, sourceChannel: 'fhir' as never, fillerOrderNumber: 'F2' }),
    );
    expect(order.version).toBe(1);
    order.placerOrderNumber = 'P2';
    const saved = await repo.save(order);
    expect(saved.version).toBe(2);
  });

  it('gives existing FHIR orders the client that sent them (source_client), from their inbound request', async () => {
    // Back to just before OrderSourceClient, with orders as the older schema kept them.
    const later = MIGRATIONS.length - MIGRATIONS.findIndex((m) => m.name === 'OrderSourceClient1764310000000');
    for (let i = 0; i < later; i++) await revertLastMigration(ds);
    const [fhirIn] = await ds.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, raw) VALUES ('fhir', 'lab-a', 'R1', '{}') RETURNING id`,
    );
    const [hl7In] = await ds.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, raw) VALUES ('hl7', 'LIS|LAB', 'R2', 'x') RETURNING id`,
    );
    await ds.query(
      `INSERT INTO orders (status, source_channel, filler_order_number, inbound_message_id)
       VALUES ('received', 'fhir', 'F-FHIR', $1), ('received', 'hl7', 'F-HL7', $2)`,
      [fhirIn.id, hl7In.id],
    );
    expect(await runMigrations(ds)).toHaveLength(later);
    const rows = await ds.query(
      `SELECT filler_order_number, source_client FROM orders WHERE filler_order_number LIKE 'F-%' ORDER BY 1`,
    );
    expect(rows).toEqual([
      { filler_order_number: 'F-FHIR', source_client: 'lab-a' },
      { filler_order_number: 'F-HL7', source_client: null },
    ]);
  });

  it('announces every changed order on hb_order_changed, one notification per statement and 100 orders', async () => {
    const listener = new Client({ connectionString: url });
    await listener.connect();
    const payloads: string[] = [];
    listener.on('notification', (n) => payloads.push(n.payload ?? ''));
    await listener.query('LISTEN hb_order_changed');
    const announced = async (expected: number) => {
      // NOTIFY is delivered after COMMIT; a trivial round trip on the listener flushes what arrived.
      for (let i = 0; i < 50 && payloads.flatMap((p) => p.split(',')).length < expected; i++) {
        await new Promise((r) => setTimeout(r, 20));
        await listener.query('SELECT 1');
      }
      const ids = payloads.flatMap((p) => p.split(','));
      const count = payloads.length;
      payloads.length = 0;
      return { ids, count };
    };
    try {
      // 250 orders in one statement (a group commit's shape): 3 notifications, every id once.
      const made: Array<{ id: string }> = await ds.query(
        `INSERT INTO orders (status, source_channel, filler_order_number)
         SELECT 'received', 'hl7', 'NOTIFY-' || n FROM generate_series(1, 250) n RETURNING id`,
      );
      let seen = await announced(250);
      expect(seen.count).toBe(3);
      expect(new Set(seen.ids)).toEqual(new Set(made.map((m) => m.id)));
      expect(seen.ids).toHaveLength(250);

      // A timeline line, a delivery and an update each announce their order.
      const one = made[0]!.id;
      await ds.query(`INSERT INTO order_events (order_id, type, actor) VALUES ($1, 'note', 'test')`, [one]);
      seen = await announced(1);
      expect(seen.ids).toEqual([one]);
      await ds.query(`UPDATE orders SET status = 'ready' WHERE filler_order_number IN ('NOTIFY-2', 'NOTIFY-3')`);
      seen = await announced(2);
      expect(seen.count).toBe(1);
      expect(seen.ids.sort()).toEqual([made[1]!.id, made[2]!.id].sort());
      // A statement that changes nothing announces nothing.
      await ds.query(`UPDATE orders SET status = 'ready' WHERE filler_order_number = 'NO-SUCH-ORDER'`);
      await ds.query(`INSERT INTO order_events (order_id, type, actor) VALUES ($1, 'note', 'test')`, [one]);
      seen = await announced(1);
      expect(seen.ids).toEqual([one]);
    } finally {
      await listener.end();
    }
  });

  it('indexes the identifier value of existing FHIR orders (If-None-Exist without a system), and reverts cleanly', async () => {
    const name = 'FhirIdentifierValueIndex1764330000000';
    const later = MIGRATIONS.length - MIGRATIONS.findIndex((m) => m.name === name);
    for (let i = 0; i < later; i++) await revertLastMigration(ds);
    const indexes = async () =>
      (
        (await ds.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'orders'`)) as Array<{ indexname: string }>
      ).map((r) => r.indexname);
    expect(await indexes()).not.toContain('ix_orders_fhir_identifier_value');
    await ds.query(
      `INSERT INTO orders (status, source_channel, filler_order_number, external_key)
       VALUES ('received', 'fhir', 'F-IDV1', 'fhir:urn:a|V-1'), ('received', 'fhir', 'F-IDV2', 'fhir:urn:b|x|V-2'),
              ('received', 'hl7', 'F-IDV3', 'hl7:LIS|V-1')`,
    );
    expect(await runMigrations(ds)).toHaveLength(later);
    expect(await indexes()).toContain('ix_orders_fhir_identifier_value');
    // The lookup FhirOrdersRepository sends, answered from the index (sequential scans off: the table is tiny).
    const qr = ds.createQueryRunner();
    try {
      await qr.query('SET enable_seqscan = off');
      const sql = `SELECT filler_order_number FROM orders WHERE external_key LIKE 'fhir:%|%'
                     AND substr(external_key, strpos(external_key, '|') + 1) = $1`;
      const plan = ((await qr.query(`EXPLAIN ${sql}`, ['V-1'])) as Array<{ 'QUERY PLAN': string }>)
        .map((r) => r['QUERY PLAN'])
        .join('\n');
      expect(plan).toMatch(/ix_orders_fhir_identifier_value/);
      // The value is what follows the first '|' (a value may hold '|'); HL7 keys are not FHIR identifiers.
      expect(await qr.query(sql, ['V-1'])).toEqual([{ filler_order_number: 'F-IDV1' }]);
      expect(await qr.query(sql, ['x|V-2'])).toEqual([{ filler_order_number: 'F-IDV2' }]);
    } finally {
      await qr.query('RESET enable_seqscan');
      await qr.release();
    }
    for (let i = 0; i < later; i++) await revertLastMigration(ds);
    expect(await indexes()).not.toContain('ix_orders_fhir_identifier_value');
    expect(await runMigrations(ds)).toHaveLength(later);
  });

  it('finds inbound messages by control id alone from an index, and reverts cleanly', async () => {
    const sql = `SELECT sender FROM inbound_messages WHERE control_id = $1`;
    const plan = async () => {
      const qr = ds.createQueryRunner();
      try {
        await qr.query('SET enable_seqscan = off');
        return ((await qr.query(`EXPLAIN ${sql}`, ['MSG-1'])) as Array<{ 'QUERY PLAN': string }>)
          .map((r) => r['QUERY PLAN'])
          .join('\n');
      } finally {
        await qr.query('RESET enable_seqscan');
        await qr.release();
      }
    };
    const later = MIGRATIONS.length - MIGRATIONS.findIndex((m) => m.name === 'InboundControlIdIndex1764340000000');
    expect(await plan()).toMatch(/ix_inbound_control_id/);
    await ds.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, raw) VALUES ('hl7', 'LIS|A', 'MSG-1', 'x'), ('hl7', 'RIS|B', 'MSG-1', 'y')`,
    );
    expect(((await ds.query(sql, ['MSG-1'])) as Array<{ sender: string }>).map((r) => r.sender).sort()).toEqual([
      'LIS|A',
      'RIS|B',
    ]);
    for (let i = 0; i < later; i++) await revertLastMigration(ds);
    expect(await plan()).not.toMatch(/ix_inbound_control_id/);
    expect(await runMigrations(ds)).toHaveLength(later);
  });

  it('marks orders already failed on the poll deadline (failure_code), so their late reports are taken up too', async () => {
    const later = MIGRATIONS.length - MIGRATIONS.findIndex((m) => m.name === 'OrderFailureCode1764350000000');
    for (let i = 0; i < later; i++) await revertLastMigration(ds);
    const made: Array<{ id: string; filler_order_number: string }> = await ds.query(
      `INSERT INTO orders (status, source_channel, filler_order_number)
       VALUES ('failed', 'hl7', 'F-DEADLINE'), ('failed', 'hl7', 'F-HEMATO'), ('failed', 'hl7', 'F-RETRIED'),
              ('cancelled', 'hl7', 'F-CANCELLED')
       RETURNING id, filler_order_number`,
    );
    const id = (f: string) => made.find((m) => m.filler_order_number === f)!.id;
    const failed = (orderId: string, step: string) =>
      ds.query(
        `INSERT INTO order_events (order_id, type, actor, from_status, to_status, detail)
         VALUES ($1, 'status_changed', 'worker', 'processing', 'failed', $2)`,
        [orderId, JSON.stringify({ step })],
      );
    await failed(id('F-DEADLINE'), 'wait_for_report');
    await failed(id('F-HEMATO'), 'hemato_processing');
    // Failed on the deadline, retried, then failed for another reason: the latest failure counts.
    await failed(id('F-RETRIED'), 'wait_for_report');
    await failed(id('F-RETRIED'), 'orders.fetch-report');
    await failed(id('F-CANCELLED'), 'wait_for_report');
    expect(await runMigrations(ds)).toHaveLength(later);
    const rows = await ds.query(`SELECT filler_order_number, failure_code FROM orders WHERE id = ANY($1) ORDER BY 1`, [
      made.map((m) => m.id),
    ]);
    expect(rows).toEqual([
      { filler_order_number: 'F-CANCELLED', failure_code: null },
      { filler_order_number: 'F-DEADLINE', failure_code: 'poll_deadline' },
      { filler_order_number: 'F-HEMATO', failure_code: null },
      { filler_order_number: 'F-RETRIED', failure_code: null },
    ]);
  });
});
