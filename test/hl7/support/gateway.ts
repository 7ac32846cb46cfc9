import { randomBytes } from 'node:crypto';
import { loadConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { createTestDatabase, testEnv } from '@hemato/testing';
import type { DataSource } from 'typeorm';
import { bootstrapGateway, type RunningGateway } from '../../../apps/gateway/src/bootstrap';

export interface TestGateway {
  gateway: RunningGateway;
  mllpPort: number;
  /** A separate connection to the same database, for assertions. */
  db: DataSource;
  databaseUrl: string;
  close(): Promise<void>;
}

/** A migrated, empty database for one test file. */
export async function migratedDatabase(): Promise<string> {
  // A label unique per call: createTestDatabase's counter restarts in every test file, and with
  // --runInBand all files share one pid.
  const url = await createTestDatabase(`hl7${randomBytes(4).toString('hex')}`);
  const ds = await createDataSource({ url }).initialize();
  try {
    await runMigrations(ds);
  } finally {
    await ds.destroy();
  }
  return url;
}

/**
 * The real gateway in-process (HTTP + MLLP on free ports) on a fresh migrated database.
 * `gatewayDatabaseUrl` lets a test put something (a TCP proxy) between the gateway and PostgreSQL.
 */
export async function startGateway(
  env: Record<string, string | undefined> = {},
  opts: { databaseUrl?: string; gatewayDatabaseUrl?: (url: string) => string } = {},
): Promise<TestGateway> {
  const databaseUrl = opts.databaseUrl ?? (await migratedDatabase());
  const gwUrl = opts.gatewayDatabaseUrl ? opts.gatewayDatabaseUrl(databaseUrl) : databaseUrl;
  const config = loadConfig(testEnv({ DATABASE_URL: gwUrl, ...env }));
  const gateway = await bootstrapGateway(config);
  const mllpPort = Number(new URL(gateway.urls.mllp!.replace(/^mllps?:/, 'http:')).port);
  const db = await createDataSource({ url: databaseUrl, poolSize: 2 }).initialize();
  return {
    gateway,
    mllpPort,
    db,
    databaseUrl,
    async close() {
      await gateway.app.close();
      await db.destroy();
    },
  };
}
