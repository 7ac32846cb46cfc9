import { JobName, QueueName } from '@hemato/common';
import { getQueueToken } from '@nestjs/bullmq';
import { prepareTestApp } from '@hemato/testing';
import type { INestApplicationContext } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { LifecycleQueue, stepJobId } from '@hemato/orders';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { bootstrapWorker } from '../../apps/worker/src/bootstrap';

describe('BullMQ job round trip', () => {
  let worker: INestApplicationContext;
  let queue: Queue;
  let events: QueueEvents;

  beforeAll(async () => {
    const { config } = await prepareTestApp('queue');
    worker = await bootstrapWorker(config);
    const connection = { url: config.redis.REDIS_URL };
    // The queue as the app registered it (with the default job options).
    queue = worker.get<Queue>(getQueueToken(QueueName.Maintenance));
    events = new QueueEvents(QueueName.Maintenance, { connection, prefix: config.redis.QUEUE_PREFIX });
    await events.waitUntilReady();
  });

  afterAll(async () => {
    await events?.close();
    await queue?.obliterate({ force: true }).catch(() => undefined);
    await worker?.close();
  });

  it('a job enqueued in Redis is consumed by the worker and its result comes back', async () => {
    const job = await queue.add(JobName.Echo, { value: 'ping-42' });
    const result = await job.waitUntilFinished(events, 15_000);
    expect(result).toEqual({ echoed: 'ping-42', by: process.pid });
  });

  it('jobs get the default options: retries with exponential backoff, failures kept', async () => {
    const job = await queue.add(JobName.Echo, { value: 1 });
    expect(job.opts.attempts).toBe(8);
    expect(job.opts.backoff).toEqual({ type: 'exponential', delay: 2000 });
    expect(job.opts.removeOnFail).toBe(false);
  });
});

describe('LifecycleQueue.stepAgainIfFailed', () => {
  let config: Awaited<ReturnType<typeof prepareTestApp>>['config'];
  let orders: Queue;
  let deliveries: Queue;
  beforeAll(async () => {
    ({ config } = await prepareTestApp('stepagain'));
    const connection = { url: config.redis.REDIS_URL };
    orders = new Queue(QueueName.Orders, { connection, prefix: config.redis.QUEUE_PREFIX });
    deliveries = new Queue(QueueName.Deliveries, { connection, prefix: config.redis.QUEUE_PREFIX });
  });
  afterAll(async () => {
    await orders?.obliterate({ force: true }).catch(() => undefined);
    await Promise.all([orders?.close(), deliveries?.close()]);
  });

  it('runs a step again whose job failed for good, and leaves one still waiting alone', async () => {
    const lq = new LifecycleQueue(orders, deliveries);
    const order = { id: randomUUID(), version: 3 };
    const id = stepJobId(JobName.OrderFetchReport, order);
    await lq.stepAgainIfFailed(JobName.OrderFetchReport, order);
    const first = await orders.getJob(id);
    expect(first).toBeDefined();
    // Asked again while it waits: the same job, not a second one.
    await lq.stepAgainIfFailed(JobName.OrderFetchReport, order);
    expect(await orders.getJobCounts('wait', 'delayed', 'prioritized')).toMatchObject({ wait: 1 });
    // It fails for good (this queue has no retries: one throw and it is failed)...
    const w = new Worker(
      QueueName.Orders,
      async () => {
        throw new Error('report endpoint down');
      },
      { connection: { url: config.redis.REDIS_URL }, prefix: config.redis.QUEUE_PREFIX },
    );
    await new Promise<void>((resolve) => w.on('failed', () => resolve()));
    await w.close();
    expect(await (await orders.getJob(id))!.isFailed()).toBe(true);
    // ...and the next callback runs it again under the same id.
    await lq.stepAgainIfFailed(JobName.OrderFetchReport, order);
    const again = await orders.getJob(id);
    expect(await again!.isFailed()).toBe(false);
    expect(await again!.getState()).toBe('waiting');
  });
});
