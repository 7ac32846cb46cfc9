import 'reflect-metadata';
import { ConfigError, createLogger, loadConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { ensureFirstAdmin } from '../../gateway/src/admin/auth/first-admin';
import { bootstrapGateway } from '../../gateway/src/bootstrap';
import { bootstrapSandbox } from '../../hemato-sandbox/src/bootstrap';
import { bootstrapWorker } from '../../worker/src/bootstrap';
import { startEmbeddedPostgres } from './embedded/embedded-postgres';
import { startEmbeddedRedis } from './embedded/embedded-redis';
import { ensureLocalSecrets } from './embedded/secrets';

/**
 * `npm start`: everything in one process on embedded defaults. PostgreSQL and Redis are started
 * locally unless DATABASE_URL / REDIS_URL point elsewhere; secrets are generated once under DATA_DIR.
 */
const log = createLogger('all-in-one');
const stops: Array<{ name: string; stop: () => Promise<unknown> }> = [];

async function main() {
  const env = process.env;
  const pre = loadConfig(env, ['core', 'embedded']);
  const dataDir = pre.core.DATA_DIR;
  const lines: string[] = [];

  await ensureLocalSecrets(dataDir, env);

  if (!env.DATABASE_URL) {
    const pg = await startEmbeddedPostgres(dataDir, pre.embedded.EMBEDDED_PG_PORT);
    stops.unshift({ name: 'postgres', stop: pg.stop });
    env.DATABASE_URL = pg.url;
    lines.push(`postgres (embedded): 127.0.0.1:${pre.embedded.EMBEDDED_PG_PORT}, data in ${dataDir}/postgres`);
  }
  if (!env.REDIS_URL) {
    const redis = await startEmbeddedRedis(dataDir, pre.embedded.EMBEDDED_REDIS_PORT);
    stops.unshift({ name: 'redis', stop: redis.stop });
    env.REDIS_URL = redis.url;
    lines.push(`redis (embedded): ${redis.url}`);
  }

  // The built-in sandbox stands in for Hemato.AI unless HEMATO_BASE_URL points elsewhere.
  const sandboxCfg = loadConfig(env, ['core', 'sandbox']);
  if (!env.HEMATO_BASE_URL && sandboxCfg.sandbox.SANDBOX_ENABLED) {
    const sandbox = await bootstrapSandbox({
      core: { ...sandboxCfg.core, HOST: '127.0.0.1' },
      sandbox: sandboxCfg.sandbox,
    });
    stops.unshift({ name: 'sandbox', stop: () => sandbox.close() });
    env.HEMATO_BASE_URL = sandbox.url;
    env.HEMATO_AUTH ??= 'session';
    env.HEMATO_USER ??= 'ali@example.com';
    env.HEMATO_PASSWORD ??= 'hemato-sandbox';
    lines.push(`hemato-sandbox: ${sandbox.url} (user ali@example.com / hemato-sandbox)`);
  }
  // Results for HL7 orders go to an MLLP receiver; by default one on this machine (npm run demo listens there).
  env.HL7_RESULT_HOST ??= '127.0.0.1';
  env.HL7_RESULT_PORT ??= '2576';
  lines.push(`HL7 results (ORU^R01) to: mllp://${env.HL7_RESULT_HOST}:${env.HL7_RESULT_PORT}`);

  const config = loadConfig(env);

  const ds = await createDataSource({ url: config.database.DATABASE_URL }).initialize();
  try {
    const applied = await runMigrations(ds);
    if (applied.length) log.info({ applied }, 'migrations applied');
    const admin = config.dashboard.ADMIN_BOOTSTRAP ? await ensureFirstAdmin(ds) : null;
    if (admin) lines.push(`dashboard admin (shown once): ${admin.email} / ${admin.password}`);
  } finally {
    await ds.destroy();
  }

  const worker = await bootstrapWorker(config);
  stops.unshift({ name: 'worker', stop: () => worker.close() });
  const gateway = await bootstrapGateway(config);
  stops.unshift({ name: 'gateway', stop: () => gateway.app.close() });

  console.log('\nhemato-bridge is running (all-in-one):');
  for (const [name, url] of Object.entries(gateway.urls)) console.log(`  ${name.padEnd(10)} ${url}`);
  for (const line of lines) console.log(`  ${line}`);
  console.log('  Ctrl-C stops everything.\n');
}

let stopping = false;
async function shutdown(signal: string, exitCode = 0) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'stopping');
  // Whatever happens, the process is gone within 10 s.
  setTimeout(() => {
    log.error('shutdown took longer than 10 s: exiting');
    process.exit(1);
  }, 9_500).unref();
  for (const { name, stop } of stops) {
    try {
      await stop();
    } catch (err) {
      log.warn({ part: name, err: err instanceof Error ? err.message : String(err) }, 'stop failed');
    }
  }
  process.exit(exitCode);
}

// embedded-postgres installs its own signal hooks (async-exit-hook) that stop PostgreSQL and exit at once,
// racing our orderly shutdown (gateway, worker, then the databases). Ours stops everything it started.
process.removeAllListeners('SIGINT');
process.removeAllListeners('SIGTERM');
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

main().catch(async (err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else log.fatal({ err }, 'failed to start');
  await shutdown('startup-failure', 1);
});
