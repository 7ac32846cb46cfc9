import net from 'node:net';
import { loadConfig, type AppConfig, type OrderStatus } from '@hemato/common';
import { OrderEntity, createDataSource, runMigrations } from '@hemato/persistence';
import type { INestApplicationContext } from '@nestjs/common';
import type { DataSource, FindOptionsWhere } from 'typeorm';
import { bootstrapGateway, type RunningGateway } from '../../../apps/gateway/src/bootstrap';
import { bootstrapSandbox, type RunningSandbox } from '../../../apps/hemato-sandbox/src/bootstrap';
import { bootstrapWorker } from '../../../apps/worker/src/bootstrap';
import { MllpResultReceiver } from './mllp-result-receiver';
import { createTestDatabase, testEnv } from './test-env';

/** A TCP port free right now on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export interface Pipeline {
  config: AppConfig;
  env: NodeJS.ProcessEnv;
  gateway: RunningGateway;
  worker: INestApplicationContext | null;
  sandbox: RunningSandbox;
  receiver: MllpResultReceiver;
  /** A separate connection to the same database, for assertions. */
  db: DataSource;
  httpUrl: string;
  mllpPort: number;
  /** Starts the worker again (after `stopWorker`, or with new env). */
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The whole system in one test process, as `npm start` runs it: the Hemato.AI sandbox, the gateway
 * (HTTP + MLLP), the worker, and an MLLP receiver standing in for the hospital's result interface,
 * on a fresh migrated database and a private Redis prefix. `env` overrides any variable.
 */
export async function startPipeline(
  label: string,
  env: Record<string, string | undefined> = {},
  opts: { worker?: boolean } = {},
): Promise<Pipeline> {
  const databaseUrl = env.DATABASE_URL ?? (await createTestDatabase(label));
  const ds = await createDataSource({ url: databaseUrl }).initialize();
  await runMigrations(ds);
  await ds.destroy();

  const receiver = await new MllpResultReceiver().start();
  const port = await freePort();
  const sandboxEnv = testEnv({ SANDBOX_PORT: '0', SANDBOX_PROCESSING_MS: '300', ...env });
  const sandbox = await bootstrapSandbox(loadConfig(sandboxEnv, ['core', 'sandbox']));
  const fullEnv = testEnv({
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    HEMATO_BASE_URL: sandbox.url,
    HEMATO_USER: 'ali@example.com',
    HEMATO_PASSWORD: 'hemato-sandbox',
    HL7_RESULT_HOST: '127.0.0.1',
    HL7_RESULT_PORT: String(receiver.port),
    HL7_ACK_TIMEOUT_MS: '3000',
    POLL_MAX_INTERVAL_MS: '1000',
    RECONCILE_INTERVAL_MS: '1000',
    STALE_AFTER_MS: '5000',
    IMAGE_DIR: `/tmp/hb-images-${label}-${process.pid}`,
    ...env,
  });
  const config = loadConfig(fullEnv);
  const gateway = await bootstrapGateway(config);
  const mllpPort = Number(new URL(gateway.urls.mllp!.replace(/^mllps?:/, 'http:')).port);
  const db = await createDataSource({ url: databaseUrl, poolSize: 2 }).initialize();
  let worker: INestApplicationContext | null = null;
  const pipeline: Pipeline = {
    config,
    env: fullEnv,
    gateway,
    worker,
    sandbox,
    receiver,
    db,
    httpUrl: gateway.urls.http!,
    mllpPort,
    async startWorker() {
      worker = await bootstrapWorker(config);
      pipeline.worker = worker;
    },
    async stopWorker() {
      await worker?.close();
      worker = null;
      pipeline.worker = null;
    },
    async close() {
      await pipeline.stopWorker();
      await gateway.app.close();
      await sandbox.close();
      await receiver.stop();
      await db.destroy();
    },
  };
  if (opts.worker !== false) await pipeline.startWorker();
  return pipeline;
}

/** Waits until `probe` returns a value (not undefined/null/false), polling every 200 ms. */
export async function eventually<T>(
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 60_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null && v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Waits until the order found by `where` (its id, placer number, external key, ...) has `status`, and
 * returns it as it is then. The order need not exist yet.
 */
export function orderReaches(
  db: DataSource,
  where: FindOptionsWhere<OrderEntity>,
  status: OrderStatus,
  timeoutMs = 60_000,
): Promise<OrderEntity> {
  return eventually(
    async () => {
      const o = await db.manager.findOne(OrderEntity, { where });
      return o?.status === status ? o : null;
    },
    timeoutMs,
    `order ${JSON.stringify(where)} ${status}`,
  );
}
