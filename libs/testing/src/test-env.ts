import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/**
 * Test infrastructure on the real services. A run gets an id (set by Jest's global setup);
 * every test file makes its own database `hb_<run>_<n>` and uses its own Redis key prefix,
 * so runs and files never collide. All of a run's databases are dropped at the end.
 */

export const DEFAULT_ADMIN_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function runId(): string {
  process.env.HB_TEST_RUN_ID ??= `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  return process.env.HB_TEST_RUN_ID;
}

/** The server tests make databases on: DATABASE_URL if set, else local PostgreSQL. */
export function adminDatabaseUrl(): string {
  return process.env.HB_TEST_ADMIN_DATABASE_URL ?? process.env.DATABASE_URL ?? DEFAULT_ADMIN_DATABASE_URL;
}

export function testRedisUrl(): string {
  return process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
}

function withDatabase(url: string, db: string): string {
  const u = new URL(url);
  u.pathname = '/' + db;
  return u.toString();
}

let counter = 0;

/** Creates an empty database for one test file and returns its URL. */
export async function createTestDatabase(label = 'db'): Promise<string> {
  // The counter restarts in every test file (Jest gives each its own module registry): a random part
  // keeps two files of one run apart.
  const name = `hb_${runId()}_${label.replace(/[^a-z0-9]/gi, '').toLowerCase()}_${++counter}_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  return withDatabase(adminDatabaseUrl(), name);
}

/** Drops every database this run made (called from Jest's global teardown). */
export async function dropRunDatabases(): Promise<number> {
  const admin = new Client({ connectionString: adminDatabaseUrl() });
  await admin.connect();
  try {
    const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [
      `hb_${runId()}_%`,
    ]);
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    return rows.length;
  } finally {
    await admin.end();
  }
}

/** A Redis key prefix unique to this run and test file. */
export function testQueuePrefix(label = 'q'): string {
  return `hbtest:${runId()}:${label}:${++counter}${randomBytes(4).toString('hex')}`;
}

/**
 * A complete environment for starting gateway/worker in a test: fresh secrets, the given database,
 * the shared Redis under a private prefix, ports chosen by the OS.
 */
export function testEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    HOST: '127.0.0.1',
    PORT: '0',
    MLLP_PORT: '0',
    MLLP_HOST: '127.0.0.1',
    REDIS_URL: testRedisUrl(),
    QUEUE_PREFIX: testQueuePrefix(),
    CALLBACK_SIGNING_SECRET: randomBytes(32).toString('hex'),
    PHI_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    PHI_HMAC_KEY: randomBytes(32).toString('hex'),
    API_KEYS: 'test-api-key',
    ...overrides,
  };
}
