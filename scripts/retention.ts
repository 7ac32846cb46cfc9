/**
 * `npm run retention [-- --check] [--days N]`
 *
 * Erases patient data past the retention period now, as the worker's `maintenance.retention` job does every
 * RETENTION_INTERVAL_MS (see README, Retention). `--days N` uses N instead of RETENTION_DAYS; `--check` only
 * counts what would be erased (to see what a RETENTION_DAYS would do before setting it). Prints one JSON line
 * of counts (never ids or values). Exit 0, or 2 when no period is given (RETENTION_DAYS=0 and no --days).
 *
 * Database: DATABASE_URL, else the embedded PostgreSQL of `npm start` (running).
 */
import 'reflect-metadata';
import { loadConfig } from '@hemato/common';
import { RetentionService } from '@hemato/orders';
import { createDataSource } from '@hemato/persistence';

/** `--name value` or `--name=value`. */
function arg(name: string): string | undefined {
  const inline = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (inline) return inline.slice(name.length + 3);
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  const config = loadConfig(process.env, ['embedded', 'orders']);
  const given = arg('days');
  const days = given === undefined ? config.orders.RETENTION_DAYS : Number(given);
  if (!Number.isInteger(days) || days < 0) {
    console.error('retention: --days must be a whole number of days');
    return 2;
  }
  if (days === 0) {
    console.error('retention: no period: set RETENTION_DAYS or pass --days N');
    return 2;
  }
  const url =
    process.env.DATABASE_URL || `postgres://hemato:hemato@127.0.0.1:${config.embedded.EMBEDDED_PG_PORT}/hemato`;
  const ds = await createDataSource({ url }).initialize();
  try {
    const retention = new RetentionService(ds, config);
    if (check) {
      console.log(JSON.stringify({ retention_days: days, would_erase: await retention.preview(days) }));
    } else {
      console.log(JSON.stringify({ retention_days: days, erased: await retention.purge({ days }) }));
    }
    return 0;
  } finally {
    await ds.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`retention: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
