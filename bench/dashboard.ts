/**
 * `npm run bench:dashboard`: the order list and search under 100,000 orders.
 *
 * Makes a fresh database on the PostgreSQL at HB_TEST_ADMIN_DATABASE_URL / DATABASE_URL (default the
 * local one), seeds 100,000 orders with generate_series, starts the gateway in-process, signs in over
 * HTTP and times the list (by status, newest first, following cursors) and the search (placer number,
 * filler prefix, patient proxy id). Prints one JSON line to stdout; progress goes to stderr.
 * The database is dropped at the end.
 */
import 'reflect-metadata';
import { loadConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { adminDatabaseUrl, testEnv } from '@hemato/testing';
import { Client } from 'pg';
import { createAdminUser } from '../apps/gateway/src/admin/auth/first-admin';
import { bootstrapGateway } from '../apps/gateway/src/bootstrap';

const ORDERS = Number(process.env.BENCH_ORDERS ?? 100_000);
const PROXIES = Math.max(1, Math.floor(ORDERS / 5));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 300);
const WARMUP = 30;
const STATUSES = [
  'received',
  'awaiting_images',
  'processing',
  'delivering',
  'completed',
  'failed',
  'rejected',
  'cancelled',
];

const say = (m: string) => process.stderr.write(`bench:dashboard: ${m}\n`);

function p95(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.ceil(s.length * 0.95) - 1)]! * 10) / 10;
}

async function main() {
  const admin = adminDatabaseUrl();
  const dbName = `hb_bench_dashboard_${Date.now().toString(36)}`;
  const adminClient = new Client({ connectionString: admin });
  await adminClient.connect();
  await adminClient.query(`CREATE DATABASE "${dbName}"`);
  const u = new URL(admin);
  u.pathname = '/' + dbName;
  const url = u.toString();
  let stop: (() => Promise<void>) | undefined;
  try {
    const ds = await createDataSource({ url }).initialize();
    await runMigrations(ds);
    say(`seeding ${ORDERS} orders in ${dbName}`);
    const t0 = Date.now();
    await ds.query(
      `INSERT INTO patient_proxies (proxy_id, lookup_hmac, identity_enc, key_id)
       SELECT 'pp-' || substr(md5('p' || i), 1, 24), md5('l' || i), 'bench', 'k1' FROM generate_series(1, $1) AS i`,
      [PROXIES],
    );
    // Newest order last; statuses skewed like a real lab (most completed); one in five with a patient proxy row each.
    await ds.query(
      `WITH p AS (SELECT id, row_number() OVER (ORDER BY proxy_id) AS n FROM patient_proxies)
       INSERT INTO orders (status, source_channel, placer_order_number, filler_order_number, patient_proxy_id, tasks,
                           test_system, test_code, created_at, status_changed_at)
       SELECT CASE WHEN i % 20 < 13 THEN 'completed' ELSE ($2::text[])[1 + (i % 8)] END,
              CASE WHEN i % 3 = 0 THEN 'fhir' ELSE 'hl7' END,
              'PL' || lpad(i::text, 7, '0'),
              'F' || lpad(i::text, 8, '0'),
              p.id, '{pbs_v1}', 'LN', '34994-4',
              now() - ((($1 - i) * 30) || ' seconds')::interval,
              now() - ((($1 - i) * 30) || ' seconds')::interval
         FROM generate_series(1, $1) AS i JOIN p ON p.n = 1 + (i % $3)`,
      [ORDERS, STATUSES, PROXIES],
    );
    await ds.query(`ANALYZE`);
    const [{ n }] = (await ds.query(`SELECT count(*)::int AS n FROM orders`)) as Array<{ n: number }>;
    say(`seeded ${n} orders in ${Date.now() - t0} ms`);
    await createAdminUser(ds, { email: 'bench@localhost', role: 'admin', password: 'bench-password-123' });
    const proxyIds = (
      (await ds.query(`SELECT proxy_id FROM patient_proxies ORDER BY random() LIMIT 50`)) as Array<{ proxy_id: string }>
    ).map((r) => r.proxy_id);
    await ds.destroy();

    const config = loadConfig(testEnv({ DATABASE_URL: url, LOG_LEVEL: 'silent' }));
    const { app, urls } = await bootstrapGateway(config);
    stop = () => app.close();
    const login = await fetch(`${urls.http}/api/admin/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@localhost', password: 'bench-password-123' }),
    });
    if (login.status !== 200) throw new Error(`sign-in failed: HTTP ${login.status}`);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;

    const get = async (
      path: string,
    ): Promise<{ ms: number; body: { items: unknown[]; nextCursor: string | null } }> => {
      const started = performance.now();
      const res = await fetch(urls.http + path, { headers: { cookie } });
      const body = (await res.json()) as { items: unknown[]; nextCursor: string | null };
      const ms = performance.now() - started;
      if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
      return { ms, body };
    };

    const list: number[] = [];
    const cursors = new Map<string, string | null>();
    for (let i = 0; i < ROUNDS + WARMUP; i++) {
      const status = STATUSES[i % STATUSES.length]!;
      // Three of four calls are the first page; the fourth follows that status's cursor deeper.
      const cursor = i % 4 === 3 ? cursors.get(status) : null;
      const r = await get(`/api/admin/orders?status=${status}&limit=50${cursor ? `&cursor=${cursor}` : ''}`);
      cursors.set(status, r.body.nextCursor);
      if (r.body.items.length === 0) throw new Error(`no ${status} orders listed`);
      if (i >= WARMUP) list.push(r.ms);
    }

    const search: number[] = [];
    for (let i = 0; i < ROUNDS + WARMUP; i++) {
      const k = 1 + ((i * 7919) % ORDERS);
      const q = [
        `PL${String(k).padStart(7, '0')}`,
        `F${String(k).padStart(8, '0').slice(0, 6)}`,
        proxyIds[i % proxyIds.length]!,
      ][i % 3]!;
      const r = await get(`/api/admin/orders?q=${encodeURIComponent(q)}&limit=50`);
      if (r.body.items.length === 0) throw new Error(`search ${q} found nothing`);
      if (i >= WARMUP) search.push(r.ms);
    }

    const counts: number[] = [];
    for (let i = 0; i < 40; i++) {
      const started = performance.now();
      await (await fetch(`${urls.http}/api/admin/orders/counts`, { headers: { cookie } })).json();
      if (i >= 5) counts.push(performance.now() - started);
    }

    process.stdout.write(
      JSON.stringify({
        orders: n,
        list_p95_ms: p95(list),
        search_p95_ms: p95(search),
        counts_p95_ms: p95(counts),
        rounds: ROUNDS,
      }) + '\n',
    );
  } finally {
    await stop?.().catch(() => undefined);
    await adminClient.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await adminClient.end();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
