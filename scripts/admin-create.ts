/**
 * `npm run admin:create -- --email someone@hospital.example [--role admin|viewer] [--password-stdin] [--reset]`
 *
 * Creates a dashboard user in the database at DATABASE_URL (unset: the embedded PostgreSQL that
 * `npm start` runs, which must be running). Without --password-stdin a password is generated and
 * printed once. --reset sets a new password (and role) for an existing user, lifts a lock-out and ends the user's sessions.
 * Runs the migrations first, so it works on a fresh database.
 */
import 'reflect-metadata';
import { loadConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { createAdminUser } from '../apps/gateway/src/admin/auth/first-admin';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function main(): Promise<number> {
  const email = arg('email');
  const role = arg('role') ?? 'admin';
  if (!email) {
    console.error(
      'admin:create: --email is required, e.g. npm run admin:create -- --email you@hospital.example --role admin',
    );
    return 2;
  }
  if (role !== 'admin' && role !== 'viewer') {
    console.error('admin:create: --role must be admin or viewer');
    return 2;
  }
  const password = process.argv.includes('--password-stdin') ? await readStdin() : undefined;
  const pre = loadConfig(process.env, ['embedded']);
  const url = process.env.DATABASE_URL || `postgres://hemato:hemato@127.0.0.1:${pre.embedded.EMBEDDED_PG_PORT}/hemato`;
  const ds = await createDataSource({ url }).initialize();
  try {
    await runMigrations(ds);
    const r = await createAdminUser(ds, { email, role, password, resetIfExists: process.argv.includes('--reset') });
    console.log(`${r.created ? 'Created' : 'Updated'} dashboard user ${r.email} (${r.role}).`);
    if (!password) console.log(`Password (shown once): ${r.password}`);
    return 0;
  } catch (err) {
    console.error(`admin:create: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await ds.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`admin:create: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
