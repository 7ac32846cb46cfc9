import { JobName, QueueName } from '@hemato/common';
import { getQueueToken } from '@nestjs/bullmq';
import { prepareTestApp } from '@hemato/testing';
import type { INestApplicationContext } from '@nestjs/common';
import { QueueEvents, type Queue } from 'bullmq';
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
