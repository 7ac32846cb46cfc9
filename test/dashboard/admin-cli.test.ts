import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { createTestDatabase } from '@hemato/testing';
import { ensureFirstAdmin } from '../../apps/gateway/src/admin';
import { apiSignIn, startDashboardGateway, type DashboardGateway } from './dashboard-harness';

const run = promisify(execFile);
const CLI = path.resolve(__dirname, '../../dist/scripts/admin-create.js');

/** The first admin: `npm run admin:create` (compiled CLI) and the embedded start's ensureFirstAdmin. */
describe('creating the first admin', () => {
  let g: DashboardGateway;
  beforeAll(async () => {
    g = await startDashboardGateway('admincli');
  });
  afterAll(async () => g?.stop());

  it('admin:create prints a generated password once; that password signs in with the chosen role', async () => {
    const env = { ...process.env, DATABASE_URL: g.config.database.DATABASE_URL };
    const { stdout } = await run(process.execPath, [CLI, '--email', 'Lab.Lead@hospital.example', '--role', 'viewer'], {
      env,
    });
    const password = /Password \(shown once\): (\S+)/.exec(stdout)?.[1];
    expect(password).toBeDefined();
    const r = await apiSignIn(g.baseUrl, 'lab.lead@hospital.example', password!);
    expect(r.status).toBe(200);
    expect(r.body.role).toBe('viewer');

    // The same e-mail again is refused, unless --reset.
    await expect(run(process.execPath, [CLI, '--email', 'lab.lead@hospital.example'], { env })).rejects.toMatchObject({
      code: 1,
    });
    const reset = await run(
      process.execPath,
      [CLI, '--email', 'lab.lead@hospital.example', '--role', 'admin', '--reset'],
      { env },
    );
    const newPassword = /Password \(shown once\): (\S+)/.exec(reset.stdout)?.[1];
    // A new password ends the sessions signed in with the old one (a stolen password's session included).
    const me = await fetch(`${g.baseUrl}/api/admin/auth/me`, { headers: { cookie: r.cookie! } });
    expect(me.status).toBe(401);
    expect((await apiSignIn(g.baseUrl, 'lab.lead@hospital.example', password!)).status).toBe(401);
    const again = await apiSignIn(g.baseUrl, 'lab.lead@hospital.example', newPassword!);
    expect(again.body.role).toBe('admin');
  });

  it('ensureFirstAdmin creates admin@localhost on an empty user table only, once', async () => {
    const ds = await createDataSource({ url: await createTestDatabase('firstadmin') }).initialize();
    try {
      await runMigrations(ds);
      const first = await ensureFirstAdmin(ds);
      expect(first?.email).toBe('admin@localhost');
      expect(first!.password.length).toBeGreaterThanOrEqual(12);
      expect(await ensureFirstAdmin(ds)).toBeNull();
      const rows: Array<{ role: string; password_hash: string }> = await ds.query(
        `SELECT role, password_hash FROM admin_users`,
      );
      expect(rows).toHaveLength(1);
      expect(rows[0]!.role).toBe('admin');
      expect(rows[0]!.password_hash).toMatch(/^scrypt\$/);
      expect(rows[0]!.password_hash).not.toContain(first!.password);
    } finally {
      await ds.destroy();
    }
  });
});
