// Compiles apps/*/src and libs/*/src to dist/ with swc (seconds, not the minute tsc takes: `npm start`
// builds on every start). Type checking is `npm run typecheck`. Then builds the dashboard, if present.
import { transformFile } from '@swc/core';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { swcOptions, root } = require('./swc-options.cjs');
const out = path.join(root, 'dist');

async function* walk(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') && !entry.name.endsWith('.d.ts'))
      yield full;
  }
}

const sources = [];
for (const group of ['apps', 'libs']) {
  for (const name of await readdir(path.join(root, group))) {
    const src = path.join(root, group, name, 'src');
    if (name !== 'dashboard' && existsSync(src)) for await (const f of walk(src)) sources.push(f);
  }
}
for (const extra of ['bench', 'scripts']) {
  const dir = path.join(root, extra);
  if (existsSync(dir)) for await (const f of walk(dir)) sources.push(f);
}

await rm(out, { recursive: true, force: true });
const options = swcOptions();
await Promise.all(
  sources.map(async (file) => {
    const rel = path.relative(root, file);
    const target = path.join(out, rel.replace(/\.ts$/, '.js'));
    const result = await transformFile(file, {
      ...options,
      filename: file,
      sourceFileName: path.relative(path.dirname(target), file),
    });
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, result.code + `\n//# sourceMappingURL=${path.basename(target)}.map\n`);
    if (result.map) await writeFile(target + '.map', result.map);
  }),
);
console.log(`build: ${sources.length} files compiled to dist/`);

if (existsSync(path.join(root, 'apps/dashboard/vite.config.mts')) && process.env.SKIP_DASHBOARD_BUILD !== '1') {
  const r = spawnSync(
    process.execPath,
    [path.join(root, 'node_modules/vite/bin/vite.js'), 'build', '--logLevel', 'warn'],
    {
      cwd: path.join(root, 'apps/dashboard'),
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
  console.log('build: dashboard built to apps/dashboard/dist/');
}
