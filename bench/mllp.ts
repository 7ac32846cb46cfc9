/**
 * `npm run bench:mllp`: N ORM^O01 messages over K parallel MLLP connections (loopback) to the real
 * gateway (each ACK only after the order is committed in PostgreSQL), then the same harness against a
 * bare MLLP echo that stores nothing, then against an echo that commits each message as one row in
 * PostgreSQL before answering (the cost of durability alone, with no HL7 work), then against one that
 * group-commits the frames arriving together (what durability costs at best). Prints one JSON line:
 * `{"msgs_per_s":…,"ack_p50_ms":…,"ack_p99_ms":…,"echo_msgs_per_s":…,"commit_echo_msgs_per_s":…,
 * "group_commit_echo_msgs_per_s":…}`.
 * Each connection keeps one message in flight (as interface engines do). The server runs in a child
 * process so the harness does not share its event loop. Env: BENCH_MESSAGES (default 20000),
 * BENCH_CONNECTIONS (64), BENCH_CPU_PROF (a folder: the servers write CPU profiles there), DATABASE_URL (admin URL of the server to make the bench database on,
 * default local PostgreSQL), REDIS_URL.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { Pool } from 'pg';
import { loadConfig, rootLogger } from '@hemato/common';
import { MllpDecoder, MllpServer, encodeFrame, readAck } from '@hemato/hl7';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { createTestDatabase, dropRunDatabases, testEnv } from '@hemato/testing';
import { bootstrapGateway } from '../apps/gateway/src/bootstrap';
import { CommitBatcher } from '../apps/gateway/src/hl7/commit-batcher';

const N = Number(process.env.BENCH_MESSAGES ?? 20_000);
const K = Number(process.env.BENCH_CONNECTIONS ?? 64);
const WARMUP = Math.min(1000, Math.ceil(N / 10));

function orm(i: number, run: string): string {
  const id = `${run}-${i}`;
  return [
    `MSH|^~\\&|BENCHLIS|BENCHHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01|${id}|P|2.3`,
    `PID|1||MRN${run}${i}^^^BENCHHOSP^MR||BENCH^PATIENT${i}||19700101|F`,
    `ORC|NW|PL${id}||||||||||1234^WELBY^MARCUS`,
    `OBR|1|PL${id}||34994-4^Peripheral blood smear^LN|||20260101113000`,
    'NTE|1||benchmark order',
  ].join('\r');
}

/** K connections, one message in flight each, until N are acknowledged. */
async function drive(port: number, run: string, expectAck: boolean, total = N) {
  let next = 0;
  const latencies: number[] = [];
  const codes = new Map<string, number>();
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: K }, async () => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.setNoDelay(true);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('error', reject);
      });
      const decoder = new MllpDecoder(1024 * 1024);
      let waiting: ((frame: Buffer) => void) | null = null;
      socket.on('data', (chunk: Buffer) => {
        for (const ev of decoder.push(chunk)) if (ev.kind === 'frame' && waiting) waiting(ev.data);
      });
      while (next < total) {
        const i = next++;
        const t0 = process.hrtime.bigint();
        const reply = await new Promise<Buffer>((resolve) => {
          waiting = resolve;
          socket.write(encodeFrame(orm(i, run)));
        });
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (expectAck) {
          const code = readAck(reply.toString('utf8'))?.code ?? '?';
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
      }
      socket.destroy();
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { rate: total / seconds, p50: pct(0.5), p99: pct(0.99), codes: Object.fromEntries(codes) };
}

/** Starts the server role in a child process; resolves with its MLLP port. */
function startChild(
  role: 'gateway' | 'echo' | 'commit-echo' | 'group-commit-echo',
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; port: number }> {
  // BENCH_CPU_PROF=<folder>: the server writes a V8 CPU profile there (open it in Chrome DevTools).
  const prof = process.env.BENCH_CPU_PROF;
  const execArgv = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`, `--cpu-prof-name=${role}.cpuprofile`] : [];
  const child = fork(__filename, [role], { env: { ...process.env, ...env }, stdio: 'inherit', execArgv });
  return new Promise((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve({ child, port: m.port }));
    child.once('exit', (code) => reject(new Error(`${role} exited with ${code}`)));
  });
}

/**
 * CPU time (ms) used so far by the local PostgreSQL and Redis server processes, from /proc (Linux;
 * empty elsewhere). Backends of the gateway's pool live through the run, so the difference is theirs.
 */
function serviceCpuMs(): { postgres?: number; redis?: number } {
  if (!existsSync('/proc')) return {};
  const out: { postgres?: number; redis?: number } = {};
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const key = comm === 'postgres' ? 'postgres' : comm.startsWith('redis-server') ? 'redis' : null;
      if (!key) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime (fields 14 and 15 of stat) in clock ticks of 10 ms.
      out[key] = (out[key] ?? 0) + (Number(fields[11]) + Number(fields[12])) * 10;
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** The gateway child's CPU time (µs) since the parent sent `mark`. */
function cpuSinceMark(child: ChildProcess): Promise<NodeJS.CpuUsage> {
  const answer = new Promise<NodeJS.CpuUsage>((resolve) =>
    child.once('message', (m: { cpu: NodeJS.CpuUsage }) => resolve(m.cpu)),
  );
  child.send('cpu');
  return answer;
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

async function main(): Promise<void> {
  rootLogger().level = 'warn';
  const databaseUrl = await createTestDatabase('benchmllp');
  const ds = await createDataSource({ url: databaseUrl }).initialize();
  await runMigrations(ds);
  await ds.destroy();
  const env = testEnv({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', DATABASE_POOL_SIZE: '16' });
  const run = Date.now().toString(36);

  const gw = await startChild('gateway', env as Record<string, string>);
  await drive(gw.port, `${run}w`, true, WARMUP); // warm-up: JIT, pool, caches (not counted)
  gw.child.send('mark');
  const services0 = serviceCpuMs();
  const durable = await drive(gw.port, run, true);
  const cpu = await cpuSinceMark(gw.child);
  const services1 = serviceCpuMs();
  await stopChild(gw.child);

  const echo = await startChild('echo', {});
  await drive(echo.port, `${run}w`, false, WARMUP);
  const bare = await drive(echo.port, run, false);
  await stopChild(echo.child);

  const commitEcho = await startChild('commit-echo', { DATABASE_URL: databaseUrl });
  await drive(commitEcho.port, `${run}w`, false, WARMUP);
  const committed = await drive(commitEcho.port, run, false);
  await stopChild(commitEcho.child);

  const groupEcho = await startChild('group-commit-echo', { DATABASE_URL: databaseUrl });
  await drive(groupEcho.port, `${run}w`, false, WARMUP);
  const grouped = await drive(groupEcho.port, run, false);
  await stopChild(groupEcho.child);
  await dropRunDatabases();

  if ((durable.codes as Record<string, number>).AA !== N) {
    process.stderr.write(`not every message was accepted: ${JSON.stringify(durable.codes)}\n`);
    process.exitCode = 1;
  }
  const r = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  // Where the time goes (stderr, beside the figures): the gateway's own CPU per durable message.
  const perMsg = (ms: number | undefined, ms0: number | undefined) =>
    ms === undefined || ms0 === undefined ? 'n/a' : `${r(((ms - ms0) * 1000) / N)} µs`;
  process.stderr.write(
    `bench:mllp: CPU per durable message: gateway ${r(cpu.user / N)} µs user + ${r(cpu.system / N)} µs system, ` +
      `PostgreSQL ${perMsg(services1.postgres, services0.postgres)}, Redis ${perMsg(services1.redis, services0.redis)}\n`,
  );
  process.stdout.write(
    JSON.stringify({
      msgs_per_s: r(durable.rate),
      ack_p50_ms: r(durable.p50, 2),
      ack_p99_ms: r(durable.p99, 2),
      echo_msgs_per_s: r(bare.rate),
      commit_echo_msgs_per_s: r(committed.rate),
      group_commit_echo_msgs_per_s: r(grouped.rate),
    }) + '\n',
  );
}

async function serveGateway(): Promise<void> {
  const gw = await bootstrapGateway(loadConfig(process.env));
  const port = Number(new URL(gw.urls.mllp!.replace(/^mllps?:/, 'http:')).port);
  process.on('SIGTERM', () => void gw.app.close().then(() => process.exit(0)));
  let mark: NodeJS.CpuUsage | undefined;
  process.on('message', (m: string) => {
    if (m === 'mark') mark = process.cpuUsage();
    if (m === 'cpu') process.send!({ cpu: process.cpuUsage(mark) });
  });
  process.send!({ port });
}

async function serveEcho(): Promise<void> {
  const server = new MllpServer(
    { host: '127.0.0.1', port: 0, maxMessageBytes: 1024 * 1024, idleTimeoutMs: 0, maxConnections: 10_000 },
    {
      onMessage: async (frame) => [frame],
      onOversize: () => [],
      onHandlerError: () => [],
    },
  );
  const port = await server.listen();
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
  process.send!({ port });
}

/**
 * An echo that stores each frame in PostgreSQL (a pool the size of the gateway's) before answering it;
 * `store` says how. Used by the two durable echoes below.
 */
async function serveStoringEcho(
  table: string,
  store: (pool: Pool, frame: Buffer, connectionId: number) => Promise<void>,
): Promise<void> {
  const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 16 });
  await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, raw text NOT NULL)`);
  const server = new MllpServer(
    { host: '127.0.0.1', port: 0, maxMessageBytes: 1024 * 1024, idleTimeoutMs: 0, maxConnections: 10_000 },
    {
      onMessage: async (frame, conn) => {
        await store(pool, frame, conn.id);
        return [frame];
      },
      onOversize: () => [],
      onHandlerError: () => [],
    },
  );
  const port = await server.listen();
  process.on('SIGTERM', () => void Promise.all([server.close(), pool.end()]).then(() => process.exit(0)));
  process.send!({ port });
}

/**
 * Each frame committed as one row in its own transaction, as a naive durable listener would: what "ACK
 * after COMMIT" costs with no HL7 work.
 */
function serveCommitEcho(): Promise<void> {
  return serveStoringEcho('bench_commit_echo', async (pool, frame) => {
    await pool.query('INSERT INTO bench_commit_echo (raw) VALUES ($1)', [frame.toString('utf8')]);
  });
}

/**
 * The best a durable listener can do here with no HL7 work: frames arriving together are committed
 * together, as the gateway's group commit does (one INSERT of the batch per transaction, 2 batches in
 * flight), then answered. The durable rate against this one is the cost of the HL7 work itself.
 */
function serveGroupCommitEcho(): Promise<void> {
  let batchers: Array<CommitBatcher<string, void>> = [];
  return serveStoringEcho('bench_group_commit_echo', async (pool, frame, connectionId) => {
    if (batchers.length === 0) {
      batchers = Array.from(
        { length: 2 },
        () =>
          new CommitBatcher<string, void>(async (raws) => {
            await pool.query('INSERT INTO bench_group_commit_echo (raw) SELECT unnest($1::text[])', [raws]);
            return raws.map(() => undefined);
          }, 200),
      );
    }
    await batchers[connectionId % batchers.length]!.submit(frame.toString('utf8'));
  });
}

const role = process.argv[2];
const task =
  role === 'gateway'
    ? serveGateway()
    : role === 'echo'
      ? serveEcho()
      : role === 'commit-echo'
        ? serveCommitEcho()
        : role === 'group-commit-echo'
          ? serveGroupCommitEcho()
          : main();
task.catch((err: unknown) => {
  process.stderr.write(`bench:mllp failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
