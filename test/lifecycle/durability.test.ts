import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { OrderStatus } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { ImageFileEntity, OrderEntity } from '@hemato/persistence';
import { eventually, freePort, generateSmear, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import IORedis from 'ioredis';
import { In, Not, IsNull } from 'typeorm';

const ROOT = path.join(__dirname, '../..');

/** A Redis of its own (the system redis-server), so this test may FLUSHALL it without touching anyone else. */
async function startRedis(): Promise<{ url: string; stop(): void }> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  await eventually(
    async () => {
      const r = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } finally {
        r.disconnect();
      }
    },
    10_000,
    'redis-server',
  );
  return { url, stop: () => child.kill('SIGKILL') };
}

/** The worker as its own OS process (the compiled app), so it can be killed with SIGKILL. */
function startWorkerProcess(env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['dist/apps/worker/src/main.js'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: 'ignore',
  });
}

describe('durability: PostgreSQL is the truth, Redis only the engine', () => {
  let redis: { url: string; stop(): void };
  let p: Pipeline;
  let client: MllpClient;
  let worker: ChildProcess | undefined;

  beforeAll(async () => {
    redis = await startRedis();
    p = await startPipeline('durable', { REDIS_URL: redis.url }, { worker: false });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    worker?.kill('SIGKILL');
    client?.close();
    await p?.close();
    redis?.stop();
  });

  async function send(placer: string, images: number) {
    const data = Array.from({ length: images }, (_, i) => ({
      data: generateSmear({
        width: 800,
        height: 600,
        format: 'png',
        seed: 100 + i + placer.length * 7,
        parasites: i === 0,
      }),
      subtype: 'PNG' as const,
    }));
    const ack = await client.send(sampleOrm({ controlId: `C-${placer}`, placer, images: data }), `C-${placer}`);
    expect(ack.code).toBe('AA');
  }

  async function expectAllCompletedOnce(placers: string[]) {
    const orders = await eventually(
      async () => {
        const rows = await p.db.manager.find(OrderEntity, { where: { placerOrderNumber: In(placers) } });
        return rows.length === placers.length && rows.every((o) => o.status === OrderStatus.Completed) ? rows : null;
      },
      180_000,
      'every order completed',
    );
    for (const placer of placers) expect(p.receiver.forPlacer(placer)).toHaveLength(1);
    const { studies } = (await (await fetch(`${p.sandbox.url}/_sandbox/pbs`)).json()) as {
      studies: Array<{ tags: Record<string, string> }>;
    };
    for (const o of orders) expect(studies.filter((s) => s.tags?.bridge_order_id === o.id)).toHaveLength(1);
  }

  it('the worker killed with SIGKILL during uploads and restarted: every order completes exactly once', async () => {
    // Slow uploads down so the kill lands in the middle of them.
    await fetch(`${p.sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ latency_ms: 700, paths: ['/pbs/'] }),
    });
    const placers = ['PL-K1', 'PL-K2', 'PL-K3'];
    for (const placer of placers) await send(placer, 3);
    worker = startWorkerProcess(p.env);
    await eventually(
      () => p.db.manager.count(ImageFileEntity, { where: { hematoFileId: Not(IsNull()) } }),
      60_000,
      'a first image uploaded',
    );
    worker.kill('SIGKILL');
    await new Promise((r) => worker!.once('exit', r));
    const statuses = (await p.db.manager.find(OrderEntity, { where: { placerOrderNumber: In(placers) } })).map(
      (o) => o.status,
    );
    // The kill landed mid-way: at least one order had not finished its uploads.
    expect(
      statuses.filter((s) =>
        [OrderStatus.Uploading, OrderStatus.StudyCreated, OrderStatus.Ready, OrderStatus.Received].includes(s),
      ).length,
    ).toBeGreaterThan(0);
    await fetch(`${p.sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    worker = startWorkerProcess(p.env);
    await expectAllCompletedOnce(placers);
    worker.kill('SIGTERM');
    await new Promise((r) => worker!.once('exit', r));
    worker = undefined;
  }, 240_000);

  it('Redis flushed mid-flight (FLUSHALL): the reconciler re-drives every order from PostgreSQL', async () => {
    await p.startWorker();
    await fetch(`${p.sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ latency_ms: 300, paths: ['/pbs/'], callback_drop_rate: 1 }),
    });
    const underWay = ['PL-F1', 'PL-F2'];
    for (const placer of underWay) await send(placer, 1);
    await eventually(
      () =>
        p.db.manager.count(OrderEntity, {
          where: { placerOrderNumber: In(underWay), status: Not(In([OrderStatus.Received, OrderStatus.Ready])) },
        }),
      60_000,
      'orders under way',
    );
    // Orders accepted while no worker runs: their first job exists only in Redis...
    await p.stopWorker();
    const queued = ['PL-F3', 'PL-F4'];
    for (const placer of queued) await send(placer, 1);
    // ...and Redis loses everything.
    const r = new IORedis(redis.url);
    await r.flushall();
    expect(await r.dbsize()).toBe(0);
    r.disconnect();
    await fetch(`${p.sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    await p.startWorker();
    await expectAllCompletedOnce([...underWay, ...queued]);
    const events: Array<{ placer: string }> = await p.db.query(
      `SELECT DISTINCT o.placer_order_number AS placer FROM order_events e JOIN orders o ON o.id = e.order_id WHERE e.type = 'reconciled'`,
    );
    expect(events.map((e) => e.placer)).toEqual(expect.arrayContaining(queued));
  }, 240_000);
});
