/**
 * `npm run bench:e2e`: N orders (default 500), one small smear image each (256x256 PNG, inline ED), pushed
 * through the whole pipeline in this process as `startPipeline` runs it: gateway (MLLP in, ACK after
 * commit), worker (every lifecycle step as BullMQ jobs), the Hemato.AI sandbox with SANDBOX_PROCESSING_MS=0,
 * and ORU^R01 out over MLLP to a receiver here. Latency of an order: from its ORM's ACK AA (accepted) to the
 * moment the receiver acknowledges its ORU. Load is closed-loop: BENCH_IN_FLIGHT orders outstanding at once
 * (a steady stream, not one burst), sent over BENCH_CONNECTIONS MLLP connections.
 *
 * Prints one JSON line: `{"orders":500,"orders_per_min":…,"p50_ms":…,"p95_ms":…}` (settings on stderr).
 * Makes its own database (dropped at the end) and Redis prefix (deleted at the end).
 * Env: BENCH_ORDERS (500), BENCH_IN_FLIGHT (24), BENCH_CONNECTIONS (8), BENCH_TIMEOUT_MS (600000),
 * BENCH_LOG_LEVEL (silent), BENCH_KEEP_DB (1: keep the database for a look at the order timelines), DATABASE_URL (admin URL of the PostgreSQL to make the database on), REDIS_URL.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { loadConfig, rootLogger } from '@hemato/common';
import { MllpClient, MllpServer, buildAck, readHeader } from '@hemato/hl7';
import {
  SAMPLE_PATIENT,
  dropRunDatabases,
  generateSmear,
  sampleOrm,
  startPipeline,
  testEnv,
  testRedisUrl,
  type Pipeline,
} from '@hemato/testing';
import { bootstrapSandbox } from '../apps/hemato-sandbox/src/bootstrap';
import { bootstrapWorker } from '../apps/worker/src/bootstrap';
import { Redis } from 'ioredis';

const N = Number(process.env.BENCH_ORDERS ?? 500);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 24);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 600_000);
const SANDBOX_MODE = process.env.BENCH_SANDBOX ?? 'process';
const WORKER_MODE = process.env.BENCH_WORKER ?? 'inline';

/** The worker alone, in a child process (`--worker-child`), on the environment the parent gives it. */
async function workerChild() {
  rootLogger().level = process.env.LOG_LEVEL ?? 'silent';
  const worker = await bootstrapWorker(loadConfig(process.env));
  process.send?.({ ready: true });
  process.on('disconnect', () => void worker.close().finally(() => process.exit(0)));
}

/** Forks this script in a role; resolves with the first IPC message (its readiness). */
async function child<T>(role: string, env?: NodeJS.ProcessEnv): Promise<{ message: T; child: ChildProcess }> {
  const c = fork(__filename, [role], { env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const message = await new Promise<T>((resolve, reject) => {
    c.once('message', (m: T) => resolve(m));
    c.once('exit', (code) => reject(new Error(`${role} process exited (${code})`)));
  });
  return { message, child: c };
}

/** The sandbox alone, in a child process (`--sandbox-child`): it reports its URL over IPC. */
async function sandboxChild() {
  rootLogger().level = 'silent';
  const sandbox = await bootstrapSandbox(
    loadConfig(testEnv({ LOG_LEVEL: 'silent', SANDBOX_PORT: '0', SANDBOX_PROCESSING_MS: '0' }), ['core', 'sandbox']),
  );
  process.send?.({ url: sandbox.url });
  process.on('disconnect', () => void sandbox.close().finally(() => process.exit(0)));
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The hospital's result interface: ACKs every ORU and notes when, by placer number (ORC-2). */
function resultReceiver(onResult: (placer: string) => void): MllpServer {
  return new MllpServer(
    { host: '127.0.0.1', port: 0, maxMessageBytes: 64 * 1024 * 1024, idleTimeoutMs: 0, maxConnections: 100 },
    {
      onMessage: async (frame) => {
        const text = frame.toString('utf8');
        const orc = text.split('\r').find((s) => s.startsWith('ORC|'));
        const placer = orc?.split('|')[2]?.split('^')[0];
        if (placer) onResult(placer);
        const ack = buildAck({
          header: readHeader(text),
          code: 'AA',
          us: { application: 'BENCH-LIS', facility: 'BENCHHOSP' },
        });
        return [Buffer.from(ack, 'utf8')];
      },
      onOversize: () => [],
      onHandlerError: () => [],
    },
  );
}

async function main() {
  // The logger takes LOG_LEVEL from the process environment, not from the pipeline's: only the JSON line on stdout.
  rootLogger().level = process.env.BENCH_LOG_LEVEL ?? 'silent';
  const run = Date.now().toString(36);
  const accepted = new Map<string, number>();
  const latencies: number[] = [];
  const waiting = new Map<string, () => void>();
  let lastResult = 0;

  const receiver = resultReceiver((placer) => {
    const t = Date.now();
    const start = accepted.get(placer);
    const done = waiting.get(placer);
    if (start === undefined || !done) return; // a repeat delivery, or not ours
    waiting.delete(placer);
    latencies.push(t - start);
    lastResult = t;
    done();
  });
  const resultPort = await receiver.listen();

  // Messages are made before the clock starts: the bench measures the bridge, not the sender.
  const orders = Array.from({ length: N }, (_, i) => {
    const placer = `BE${run}${i}`;
    const controlId = `BE${run}C${i}`;
    const image = generateSmear({ width: 256, height: 256, format: 'png', seed: 1000 + i, parasites: i % 2 === 0 });
    const orm = sampleOrm({
      controlId,
      placer,
      patient: { ...SAMPLE_PATIENT, mrn: `MRN${run}${i}`, nationalId: `NI-${run}-${i}` },
      images: [{ data: image, subtype: 'PNG' }],
    });
    return { placer, controlId, orm };
  });

  let p: Pipeline | undefined;
  let clients: MllpClient[] = [];
  let exitCode = 0;
  const children: ChildProcess[] = [];
  try {
    // The sandbox stands in for the remote Hemato.AI service: by default it gets its own process.
    const external = SANDBOX_MODE === 'process' ? await child<{ url: string }>('--sandbox-child') : undefined;
    if (external) children.push(external.child);
    p = await startPipeline(
      'benche2e',
      {
        ...(external ? { HEMATO_BASE_URL: external.message.url } : {}),
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent',
        SANDBOX_PROCESSING_MS: '0',
        HL7_RESULT_PORT: String(resultPort),
        // Production-like background work: the reconciler and polling are safety nets, callbacks drive.
        RECONCILE_INTERVAL_MS: '60000',
        STALE_AFTER_MS: '300000',
        POLL_MAX_INTERVAL_MS: '30000',
      },
      { worker: WORKER_MODE !== 'process' },
    );
    // Gateway and worker as separate processes, as deployed for load (README: running the processes separately).
    if (WORKER_MODE === 'process') children.push((await child('--worker-child', p.env)).child);
    const pipeline = p;
    clients = Array.from(
      { length: CONNECTIONS },
      () => new MllpClient({ host: '127.0.0.1', port: pipeline.mllpPort, ackTimeoutMs: 60_000 }),
    );
    console.error(
      `bench:e2e: ${N} orders, ${IN_FLIGHT} in flight, ${CONNECTIONS} MLLP connections, 256x256 PNG each, ` +
        `sandbox processing 0 ms, sandbox ${external ? 'in its own process' : 'in this process'}, ` +
        `worker ${WORKER_MODE === 'process' ? 'in its own process' : 'in the gateway process'}`,
    );

    let next = 0;
    const firstSent = Date.now();
    const deadline = firstSent + TIMEOUT_MS;
    const slot = async () => {
      for (;;) {
        const i = next++;
        if (i >= N) return;
        const { placer, controlId, orm } = orders[i]!;
        const result = new Promise<void>((resolve) => waiting.set(placer, resolve));
        const ack = await clients[i % CONNECTIONS]!.send(orm, controlId);
        if (ack.code !== 'AA') throw new Error(`order ${i} not accepted: ACK ${ack.code}`);
        accepted.set(placer, Date.now());
        const left = deadline - Date.now();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          result,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no result within ${TIMEOUT_MS} ms`)), Math.max(0, left));
          }),
        ]).finally(() => clearTimeout(timer));
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, N) }, slot));

    const sorted = [...latencies].sort((a, b) => a - b);
    const minutes = (lastResult - firstSent) / 60_000;
    console.log(
      JSON.stringify({
        orders: latencies.length,
        orders_per_min: Math.round(latencies.length / minutes),
        p50_ms: percentile(sorted, 50),
        p95_ms: percentile(sorted, 95),
      }),
    );
  } catch (err) {
    exitCode = 1;
    console.error(`bench:e2e failed after ${latencies.length} results: ${err instanceof Error ? err.message : err}`);
  } finally {
    for (const c of clients) c.close();
    const prefix = p?.env.QUEUE_PREFIX;
    await p?.close().catch(() => undefined);
    await receiver.close();
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.disconnect();
            setTimeout(() => c.kill('SIGKILL'), 10_000).unref();
          }),
      ),
    );
    if (process.env.BENCH_KEEP_DB === '1') console.error(`bench database kept: ${p?.config.database.DATABASE_URL}`);
    else
      await dropRunDatabases().catch((e: unknown) => console.error(`could not drop the bench database: ${String(e)}`));
    if (prefix) {
      // BullMQ keys of this run only.
      const redis = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        let cursor = '0';
        do {
          const [c, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          cursor = c;
          if (keys.length) await redis.del(...keys);
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    }
  }
  process.exit(exitCode);
}

if (process.argv.includes('--sandbox-child')) void sandboxChild();
else if (process.argv.includes('--worker-child')) void workerChild();
else void main();
