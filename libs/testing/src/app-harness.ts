import { loadConfig, type AppConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { createTestDatabase, testEnv } from './test-env';

/**
 * A migrated fresh database and a validated config for starting gateway/worker in a test.
 * `overrides` are environment variables (strings), as a deployment would set them.
 */
export async function prepareTestApp(
  label: string,
  overrides: Record<string, string | undefined> = {},
): Promise<{ config: AppConfig; env: NodeJS.ProcessEnv; databaseUrl: string }> {
  const databaseUrl = overrides.DATABASE_URL ?? (await createTestDatabase(label));
  const migrateUrl = overrides.HB_MIGRATE_URL ?? databaseUrl;
  const ds = await createDataSource({ url: migrateUrl }).initialize();
  try {
    await runMigrations(ds);
  } finally {
    await ds.destroy();
  }
  const env = testEnv({ ...overrides, DATABASE_URL: databaseUrl });
  return { config: loadConfig(env), env, databaseUrl };
}
