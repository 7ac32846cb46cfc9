import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const GENERATED = {
  CALLBACK_SIGNING_SECRET: () => randomBytes(32).toString('base64url'),
  PHI_ENCRYPTION_KEY: () => randomBytes(32).toString('base64'),
  PHI_HMAC_KEY: () => randomBytes(32).toString('base64url'),
  API_KEYS: () => 'dev-' + randomBytes(18).toString('base64url'),
  // The FHIR API is closed without a key; `npm run demo` reads this one from secrets.json.
  FHIR_API_KEYS: () => 'fhir-' + randomBytes(18).toString('base64url'),
} as const;

/**
 * The embedded default needs secrets but a newcomer has none: make them once, keep them in
 * `<dataDir>/secrets.json` (mode 600) so encrypted data stays readable across restarts.
 * Variables already set in the environment win. Returns the names that were filled in.
 */
export async function ensureLocalSecrets(dataDir: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const file = path.resolve(dataDir, 'secrets.json');
  const stored: Record<string, string> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  let changed = false;
  const filled: string[] = [];
  for (const [key, make] of Object.entries(GENERATED)) {
    if (env[key]) continue;
    if (!stored[key]) {
      stored[key] = make();
      changed = true;
    }
    env[key] = stored[key];
    filled.push(key);
  }
  if (changed) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(stored, null, 2) + '\n', { mode: 0o600 });
  }
  return filled;
}
