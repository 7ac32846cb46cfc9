import { createDataSource, MIGRATIONS, OrderEntity, revertLastMigration, runMigrations } from '@hemato/persistence';
import { createTestDatabase } from '@hemato/testing';
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
  beforeAll(async () => {
    ds = await createDataSource({ url: await createTestDatabase('migrations') }).initialize();
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

  it('has the indexes the dashboard lookups need', async () => {
    const rows: Array<{ indexname: string }> = await ds.query(
      `SELECT indexname FROM pg_indexes WHERE tablename = 'orders'`,
    );
    const names = rows.map((r) => r.indexname);
    expect(names).toEqual(
      expect.arrayContaining(['ix_orders_status_created', 'ix_orders_placer', 'ix_orders_patient_proxy']),
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
});
