import { createTestDatabase, prepareTestApp, TcpProxy, testRedisUrl } from '@hemato/testing';
import { bootstrapGateway, type RunningGateway } from '../../apps/gateway/src/bootstrap';

describe('health', () => {
  let gateway: RunningGateway;
  let pgProxy: TcpProxy;
  let redisProxy: TcpProxy;

  beforeAll(async () => {
    const databaseUrl = await createTestDatabase('health');
    pgProxy = await TcpProxy.forUrl(databaseUrl, 5432).start();
    redisProxy = await TcpProxy.forUrl(testRedisUrl(), 6379).start();
    const { config } = await prepareTestApp('health', {
      HB_MIGRATE_URL: databaseUrl,
      DATABASE_URL: pgProxy.rewrite(databaseUrl),
      REDIS_URL: redisProxy.rewrite(testRedisUrl()),
    });
    gateway = await bootstrapGateway(config);
  });

  afterAll(async () => {
    await pgProxy.resume().catch(() => undefined);
    await redisProxy.resume().catch(() => undefined);
    await gateway?.app.close();
    await pgProxy?.stop();
    await redisProxy?.stop();
  });

  const get = async (path: string) => {
    const res = await fetch(gateway.urls.http + path);
    return {
      status: res.status,
      body: (await res.json()) as { status: string; failing?: string[]; checks?: Record<string, object> },
    };
  };

  it('live answers 200', async () => {
    expect(await get('/health/live')).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it('ready answers 200 when PostgreSQL and Redis answer', async () => {
    const { status, body } = await get('/health/ready');
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'ok', failing: [] });
  });

  it('ready answers 503 naming PostgreSQL when it stops answering, and recovers', async () => {
    await pgProxy.pause();
    const down = await get('/health/ready');
    expect(down.status).toBe(503);
    expect(down.body.failing).toEqual(['postgres']);
    // Named, not explained: the error text (addresses, user names) is for the dashboard's Health page only.
    expect(down.body).toMatchObject({ status: 'error', checks: { postgres: { ok: false }, redis: { ok: true } } });
    expect(down.body.checks!.postgres).not.toHaveProperty('error');
    await pgProxy.resume();
    let again = await get('/health/ready');
    for (let i = 0; i < 20 && again.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      again = await get('/health/ready');
    }
    expect(again.status).toBe(200);
  });

  it('ready answers 503 naming Redis when it stops answering', async () => {
    await redisProxy.pause();
    const down = await get('/health/ready');
    expect(down.status).toBe(503);
    expect(down.body.failing).toEqual(['redis']);
    await redisProxy.resume();
  });
});
