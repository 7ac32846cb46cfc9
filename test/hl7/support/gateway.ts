import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { createTestDatabase, testEnv } from '@hemato/testing';
import type { DataSource } from 'typeorm';
import { bootstrapGateway, type RunningGateway } from '../../../apps/gateway/src/bootstrap';
import { RawMllpConnection } from './mllp-test-client';

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

/**
 * For a test file about HL7 intake: the gateway (codes `LN|34994-4=pbs_v1`, us `HB-TEST|HB-FAC`, plus `env`)
 * and one open MLLP connection, started before the file's tests and closed after them.
 */
export function intakeGatewayForSuite(env: Record<string, string> = {}): {
  readonly gw: TestGateway;
  readonly conn: RawMllpConnection;
} {
  const suite = {} as { gw: TestGateway; conn: RawMllpConnection };
  beforeAll(async () => {
    suite.gw = await startGateway({
      IMAGE_DIR: mkdtempSync(path.join(os.tmpdir(), 'hl7-img-')),
      HEMATO_ORDER_CODES: 'LN|34994-4=pbs_v1',
      HL7_SENDING_APP: 'HB-TEST',
      HL7_SENDING_FACILITY: 'HB-FAC',
      ...env,
    });
    suite.conn = await RawMllpConnection.open(suite.gw.mllpPort);
  });
  afterAll(async () => {
    suite.conn?.close();
    await suite.gw?.close();
  });
  return suite;
}
