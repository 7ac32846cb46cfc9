import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '../..');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Processes whose command line mentions the folder: what `npm start` left behind, if anything. */
function processesUsing(dir: string): string[] {
  const out = execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(dir) && !l.includes('ps -eo'));
}

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startAllInOne(env: NodeJS.ProcessEnv): Started {
  let output = '';
  const child = spawn(process.execPath, ['dist/apps/all-in-one/src/main.js'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitReady(url: string, started: Started, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (started.child.exitCode !== null) throw new Error(`exited early:\n${started.output()}`);
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`not ready within ${timeoutMs} ms:\n${started.output()}`);
}

describe('npm start (all-in-one on embedded defaults)', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'hb-aio-'));
  let env: NodeJS.ProcessEnv;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    const base = { ...process.env };
    for (const k of ['DATABASE_URL', 'REDIS_URL', 'HEMATO_BASE_URL']) delete base[k];
    env = {
      ...base,
      LOG_LEVEL: 'warn',
      DATA_DIR: dataDir,
      PORT: String(port),
      MLLP_PORT: String(await freePort()),
      SANDBOX_PORT: String(await freePort()),
      EMBEDDED_PG_PORT: String(await freePort()),
      EMBEDDED_REDIS_PORT: String(await freePort()),
    };
  });

  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts PostgreSQL, Redis and the apps, serves ready, stops on SIGTERM leaving no process, and restarts on the same data', async () => {
    const first = startAllInOne(env);
    await waitReady(`http://127.0.0.1:${port}/health/ready`, first);
    expect(first.output()).toContain(`http://127.0.0.1:${port}`);
    expect(first.output()).toContain('postgres (embedded)');
    expect(processesUsing(dataDir).length).toBeGreaterThan(0);

    // Something to find after the restart.
    const { Client } = await import('pg');
    const pg = new Client({ connectionString: `postgres://hemato:hemato@127.0.0.1:${env.EMBEDDED_PG_PORT}/hemato` });
    await pg.connect();
    await pg.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, raw) VALUES ('hl7', 'TEST|RESTART', 'R1', 'x')`,
    );
    await pg.end();

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(processesUsing(dataDir)).toEqual([]);

    const second = startAllInOne(env);
    await waitReady(`http://127.0.0.1:${port}/health/ready`, second);
    const pg2 = new Client({ connectionString: `postgres://hemato:hemato@127.0.0.1:${env.EMBEDDED_PG_PORT}/hemato` });
    await pg2.connect();
    const { rows } = await pg2.query(`SELECT control_id FROM inbound_messages WHERE sender = 'TEST|RESTART'`);
    await pg2.end();
    expect(rows).toEqual([{ control_id: 'R1' }]);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
    expect(processesUsing(dataDir)).toEqual([]);
  }, 120_000);

  it('a configuration mistake stops the gateway with a readable error naming the variable', async () => {
    const started = startAllInOne({
      ...env,
      DATABASE_URL: 'nonsense',
      REDIS_URL: 'redis://127.0.0.1:6379',
      PHI_HMAC_KEY: 'short',
    });
    const code = await started.exited;
    expect(code).toBe(1);
    expect(started.output()).toContain('DATABASE_URL: must be a postgres:// or postgresql:// URL');
    expect(started.output()).toContain('(got "nonsense")');
    expect(started.output()).toContain('PHI_HMAC_KEY: must be at least 32 characters (value hidden)');
    expect(started.output()).not.toContain('"short"');
  });
});
