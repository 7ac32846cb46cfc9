import { Inject, Injectable, Optional, type OnModuleDestroy } from '@nestjs/common';
import { APP_CONFIG, redisOptionsFromUrl, withDeadline, type AppConfig } from '@hemato/common';
import { FILE_STORE, type FileStore } from '@hemato/orders';
import IORedis from 'ioredis';
import { DataSource } from 'typeorm';

export interface ReadinessReport {
  status: 'ok' | 'error';
  checks: Record<string, { ok: boolean; ms: number; error?: string }>;
  /** Names of the parts that failed, e.g. `["postgres"]`. */
  failing: string[];
}

const CHECK_TIMEOUT_MS = 2000;

/**
 * Asks PostgreSQL and Redis (and a file store on the network: the S3 bucket), each with a short
 * timeout, and names what did not answer.
 */
@Injectable()
export class ReadinessService implements OnModuleDestroy {
  /** Its own connection, failing fast (no offline queue), so a dead Redis shows at once. */
  private readonly redis: IORedis;

  constructor(
    private readonly ds: DataSource,
    @Inject(APP_CONFIG) config: Pick<AppConfig, 'redis'>,
    @Optional() @Inject(FILE_STORE) private readonly files?: FileStore,
  ) {
    this.redis = new IORedis({
      ...redisOptionsFromUrl(config.redis.REDIS_URL),
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: CHECK_TIMEOUT_MS,
      retryStrategy: () => 1000,
      lazyConnect: false,
    });
    this.redis.on('error', () => undefined);
  }

  onModuleDestroy() {
    this.redis.disconnect();
  }

  async check(): Promise<ReadinessReport> {
    const checks: ReadinessReport['checks'] = {};
    const run = async (name: string, fn: () => Promise<unknown>) => {
      const started = Date.now();
      try {
        await withDeadline(fn(), CHECK_TIMEOUT_MS, name);
        checks[name] = { ok: true, ms: Date.now() - started };
      } catch (err) {
        checks[name] = { ok: false, ms: Date.now() - started, error: err instanceof Error ? err.message : String(err) };
      }
    };
    const files = this.files;
    await Promise.all([
      run('postgres', () => this.ds.query('SELECT 1')),
      run('redis', () => this.redis.ping()),
      ...(files?.check ? [run('image_store', () => files.check!())] : []),
    ]);
    const failing = Object.entries(checks)
      .filter(([, c]) => !c.ok)
      .map(([n]) => n);
    return { status: failing.length ? 'error' : 'ok', checks, failing };
  }
}
