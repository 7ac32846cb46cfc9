/**
 * `npm run bench:upload`: uploads a 1 GiB file to a local Hemato.AI stand-in (a child process that
 * hashes every body with SHA-224, as the service does) with HematoClient.uploadFile, and the same
 * file piped with a bare `undici.request`, then prints one JSON line:
 * `{"mib_per_s":…,"undici_mib_per_s":…,"peak_rss_mib":…,"baseline_rss_mib":…}`.
 * Best of BENCH_ROUNDS (default 3) runs each, alternating; peak RSS is this process's during the
 * client uploads. Targets: peak within 64 MiB of baseline, mib_per_s >= 80% of undici_mib_per_s.
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, statSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import pino from 'pino';
import { request } from 'undici';
import { HematoClient } from '@hemato/hemato-client';

const SIZE = Number(process.env.BENCH_BYTES ?? 1024 * 1024 * 1024);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MIB = 1024 * 1024;

async function serve(file: string): Promise<void> {
  // The file is written here, not in the measuring process, so its buffers do not inflate the baseline RSS.
  await makeFile(file);
  const server = createServer((req, res) => {
    const send = (status: number, results: unknown) => {
      const body = JSON.stringify({ status, results });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    const files = /^\/pbs\/([^/]+)\/files/.exec(req.url ?? '');
    if (req.method === 'POST' && files) {
      const hash = createHash('sha224');
      req.on('data', (c: Buffer) => hash.update(c));
      req.on('end', () => send(201, { pbs_study_id: files[1], file_id: 'sha224-i-' + hash.digest('hex') }));
      return;
    }
    req.resume();
    req.on('end', () => {
      if (req.url === '/auth/login')
        send(202, { login_timestamp: '0', token: { HY_APP_AUTH_v1: 'bench-token' }, user: {} });
      else if (req.url === '/pbs') send(201, { pbs_study_id: 'bench-study' });
      else send(404, {});
    });
  });
  server.requestTimeout = 0;
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
  process.on('disconnect', () => process.exit(0));
}

async function makeFile(file: string): Promise<void> {
  if (existsSync(file) && statSync(file).size === SIZE) return;
  const out = createWriteStream(file);
  const block = Buffer.alloc(MIB);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((i * 2654435761) >>> 0, i);
  block[0] = 0xff;
  block[1] = 0xd8;
  block[2] = 0xff;
  block[3] = 0xe0;
  for (let written = 0, n = 0; written < SIZE; n++) {
    const chunk = Buffer.from(block.subarray(0, Math.min(MIB, SIZE - written)));
    if (n > 0) chunk.writeUInt32LE(n, 0);
    written += chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

async function main(): Promise<void> {
  const file = path.join(tmpdir(), `hemato-bench-${SIZE}.jpg`);
  const child = fork(__filename, ['--server', file], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const [{ port }] = (await once(child, 'message')) as [{ port: number }];
  const base = `http://127.0.0.1:${port}`;
  const client = new HematoClient({
    baseUrl: base,
    auth: { method: 'session', user: 'bench@example.com', password: 'bench' },
    logger: pino({ level: 'silent' }),
  });
  try {
    await client.login();
    const { studyId } = await client.createStudy();
    global.gc?.();
    await new Promise((r) => setTimeout(r, 200));
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    let best = 0;
    let bestUndici = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
      let t = process.hrtime.bigint();
      const up = await client.uploadFile(studyId, file, 'image/jpeg');
      const clientS = Number(process.hrtime.bigint() - t) / 1e9;
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss);
      if (up.bytes !== SIZE) throw new Error(`sent ${up.bytes} bytes`);
      best = Math.max(best, SIZE / MIB / clientS);

      t = process.hrtime.bigint();
      const res = await request(`${base}/pbs/${studyId}/files`, {
        method: 'POST',
        headers: { 'content-type': 'image/jpeg', authorization: 'bench-token' },
        body: createReadStream(file),
      });
      const answer = (await res.body.json()) as { results: { file_id: string } };
      const undiciS = Number(process.hrtime.bigint() - t) / 1e9;
      if (answer.results.file_id !== up.fileId) throw new Error('bare undici upload hashed differently');
      bestUndici = Math.max(bestUndici, SIZE / MIB / undiciS);
    }
    const round1 = (n: number) => Math.round(n * 10) / 10;
    process.stdout.write(
      JSON.stringify({
        mib_per_s: round1(best),
        undici_mib_per_s: round1(bestUndici),
        peak_rss_mib: round1(peak / MIB),
        baseline_rss_mib: round1(baseline / MIB),
      }) + '\n',
    );
  } finally {
    await client.close();
    child.disconnect();
    if (process.env.BENCH_KEEP_FILE !== '1') unlinkSync(file);
  }
}

if (process.argv[2] === '--server') {
  serve(process.argv[3]!).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
} else
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
