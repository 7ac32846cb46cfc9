import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { generateSmear, generateSmearWithTruth } from '@hemato/testing';
import { call, createStudy, login, upload, waitDone } from './sandbox-helpers';

const main = path.join(__dirname, '../../dist/apps/hemato-sandbox/src/main.js');

/**
 * The compiled sandbox as `npm run start:sandbox` runs it: its own process, images decoded on worker
 * threads. (The jest global setup builds dist/ first.)
 */
describe('Hemato.AI sandbox: standalone process', () => {
  let child: ChildProcess;
  let url: string;

  beforeAll(async () => {
    if (!existsSync(main)) throw new Error('dist/ is missing: run npm run build');
    child = spawn(process.execPath, [main], {
      env: { ...process.env, HOST: '127.0.0.1', SANDBOX_PORT: '0', SANDBOX_PROCESSING_MS: '100', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Hemato\.AI sandbox: (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`sandbox exited with ${code}`)));
    });
  });
  afterAll(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('serves the whole workflow, analysing images off the main thread', async () => {
    const token = await login(url);
    const smear = generateSmearWithTruth({ width: 640, height: 480, format: 'jpeg', seed: 61, parasites: true });
    const id = await createStudy(url, token);
    const first = await upload(url, token, id, smear.image, 'image/jpeg');
    expect(first.status).toBe(201);
    expect(first.body.debug_info.worker_threads).toBe(true);
    // Several uploads at once share the worker pool.
    const more = [62, 63, 64].map((seed) => generateSmear({ width: 320, height: 240, format: 'png', seed }));
    const answers = await Promise.all(more.map((img) => upload(url, token, id, img)));
    expect(answers.map((a) => a.status)).toEqual([201, 201, 201]);
    const corrupt = Buffer.from(smear.image.subarray(0, 300));
    const bad = await upload(url, token, id, corrupt, 'image/jpeg');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/not a valid JPEG image/);

    await call(url, 'POST', `/pbs/${id}/tasks`, { token, json: { diagnostic_tasks: ['pbs_v1'] } });
    expect((await waitDone(url, token, id)).body.results.report_status).toBe('ready');
    const report = (await call(url, 'GET', `/pbs/${id}/report`, { token })).body.results;
    expect(report.file_ids).toHaveLength(4);
    expect(Number(report.morphological_findings['ring trophozoite'].count)).toBe(smear.truth.parasites);
  });
});
