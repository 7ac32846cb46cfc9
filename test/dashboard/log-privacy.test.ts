import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { createTestDatabase, testEnv } from '@hemato/testing';
import type { DataSource } from 'typeorm';
import { apiSignIn, createUser, insertOrder } from './dashboard-harness';

const ROOT = path.resolve(__dirname, '../..');

/**
 * The compiled gateway as deployed (its own process, JSON logs on stdout at LOG_LEVEL=info): what an admin
 * types (a cancel reason naming the patient) must not reach the log when the database refuses it.
 */
describe('gateway log privacy', () => {
  let ds: DataSource;
  let child: ChildProcess;
  let output = '';
  let baseUrl: string;
  let dataDir: string;

  beforeAll(async () => {
    const databaseUrl = await createTestDatabase('logprivacy');
    ds = await createDataSource({ url: databaseUrl }).initialize();
    await runMigrations(ds);
    await createUser(ds, 'ada@lab.example', 'admin', 'admin-password-123');
    dataDir = await mkdtemp(path.join(tmpdir(), 'hb-logprivacy-'));
    child = spawn(process.execPath, ['dist/apps/gateway/src/main.js'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ...testEnv({ DATABASE_URL: databaseUrl, DATA_DIR: dataDir, LOG_LEVEL: 'info' }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    for (let i = 0; i < 240 && !/gateway http: (\S+)/.test(output); i++) {
      if (child.exitCode !== null) throw new Error(`gateway exited:\n${output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    baseUrl = /gateway http: (\S+)/.exec(output)![1]!;
  }, 90_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await ds?.destroy();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('logs a failed admin action without the values the database was sent', async () => {
    const orderId = await insertOrder(ds, { filler: 'LOGLEAK-1' });
    const { cookie } = await apiSignIn(baseUrl, 'ada@lab.example', 'admin-password-123');
    // The database refuses the cancel's timeline row (as it would a row breaking any constraint): the action
    // fails on a database error whose parameters and detail ("Failing row contains (...)") hold the reason.
    await ds.query(
      `ALTER TABLE order_events ADD CONSTRAINT test_refuse_cancel CHECK (type <> 'status_changed' OR to_status <> 'cancelled') NOT VALID`,
    );
    await fetch(`${baseUrl}/api/admin/orders/${orderId}/actions/cancel`, {
      method: 'POST',
      headers: { cookie: cookie!, 'content-type': 'application/json', origin: baseUrl },
      body: JSON.stringify({ reason: 'Duplicate of Jane Roe MRN-LOGLEAK-77' }),
    });
    for (let i = 0; i < 40 && !output.includes('admin action failed'); i++)
      await new Promise((r) => setTimeout(r, 100));
    const line = output.split('\n').find((l) => l.includes('admin action failed'));
    expect(line).toBeDefined();
    // The error is still there to diagnose (its type, message and SQL), without the parameters.
    expect(JSON.parse(line!).err).toMatchObject({
      type: 'QueryFailedError',
      query: expect.stringContaining('INSERT'),
      code: '23514',
    });
    expect(output).not.toContain('MRN-LOGLEAK-77');
    expect(output).not.toContain('Jane Roe');
  });
});
