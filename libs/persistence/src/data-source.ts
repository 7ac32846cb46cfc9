import { DataSource } from 'typeorm';
import { ENTITIES } from './entities';
import { MIGRATIONS } from './migrations';

export interface DataSourceOptions {
  url: string;
  poolSize?: number;
  /** Milliseconds a query may wait for a pooled connection before failing (keeps readiness honest). */
  connectTimeoutMs?: number;
}

/** The one TypeORM data source: `pg`, `synchronize` off, migrations as classes. */
export function createDataSource(opts: DataSourceOptions): DataSource {
  return new DataSource({
    type: 'postgres',
    url: opts.url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    synchronize: false,
    migrationsRun: false,
    migrationsTableName: 'schema_migrations',
    logging: false,
    extra: {
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      application_name: 'hemato-bridge',
    },
  });
}

/** Applies pending migrations; returns the names applied. */
export async function runMigrations(ds: DataSource): Promise<string[]> {
  const applied = await ds.runMigrations({ transaction: 'each' });
  return applied.map((m) => m.name);
}

/** Reverts the most recent migration. */
export async function revertLastMigration(ds: DataSource): Promise<void> {
  await ds.undoLastMigration({ transaction: 'each' });
}
