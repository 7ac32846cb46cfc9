import { loadConfig } from '@hemato/common';
import { createDataSource, revertLastMigration, runMigrations } from '../data-source';

/** `npm run migration:run` / `migration:revert` against DATABASE_URL. */
async function main() {
  const cmd = process.argv[2] ?? 'run';
  const { database } = loadConfig(process.env, ['database']);
  const ds = await createDataSource({ url: database.DATABASE_URL }).initialize();
  try {
    if (cmd === 'revert') {
      await revertLastMigration(ds);
      console.log('migration: reverted the last migration');
    } else {
      const names = await runMigrations(ds);
      console.log(names.length ? `migration: applied ${names.join(', ')}` : 'migration: schema is up to date');
    }
  } finally {
    await ds.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
