/**
 * `npm run phi:rotate [-- --check] [--batch 500]`
 *
 * Seals stored PHI (patient identities, inbound messages and their stored ACKs) again with the current
 * PHI_ENCRYPTION_KEY / PHI_KEY_ID, opening what was sealed with a key listed in PHI_PREVIOUS_KEYS; seals
 * messages stored before sealing existed. With PHI_PREVIOUS_HMAC_KEYS set, also files every patient proxy
 * under the current PHI_HMAC_KEY. Safe while the gateway and worker run (with the same settings) and safe
 * to run again. `--check` only counts.
 * Prints the counts (key ids, never values) before and after. Exit 0: nothing is left under another key;
 * 1: values sealed with a key the configuration does not know remain (add it to PHI_PREVIOUS_KEYS).
 *
 * Database: DATABASE_URL, else the embedded PostgreSQL of `npm start` (running), whose generated secrets
 * in DATA_DIR/secrets.json are used for variables the environment does not set.
 */
import 'reflect-metadata';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '@hemato/common';
import { createDataSource } from '@hemato/persistence';
import {
  ERASED,
  NOT_SEALED,
  censusPhiKeys,
  phiCipherFromConfig,
  rehashPatientLookups,
  resealPhi,
  type PhiKeyCensus,
} from '@hemato/privacy';

/** `--name value` or `--name=value`. */
function arg(name: string): string | undefined {
  const inline = process.argv.find((a) => a.startsWith(`--${name}=`));
  if (inline) return inline.slice(name.length + 3);
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Rows under a key other than `current` (or not sealed), in a census. */
function leftOver(census: PhiKeyCensus, current: string): number {
  return (
    [census.patientIdentities, census.inboundMessages, census.inboundAcks]
      .flatMap((t) => Object.entries(t))
      // Rows erased by retention hold nothing sealed: nothing is left over in them.
      .filter(([k]) => k !== current && k !== ERASED)
      .reduce((n, [, c]) => n + c, 0)
  );
}

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  const batchSize = Number(arg('batch') ?? 500);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    console.error('phi:rotate: --batch must be a positive whole number');
    return 2;
  }
  const env = { ...process.env };
  const { embedded, core } = loadConfig(env, ['embedded', 'core']);
  if (!env.DATABASE_URL) {
    // npm start's generated secrets, for what the environment does not set (never written here).
    const file = path.resolve(core.DATA_DIR, 'secrets.json');
    const stored: Record<string, string> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
    for (const [k, v] of Object.entries(stored)) env[k] ??= v;
  }
  const security = loadConfig(env, ['security']).security;
  const cipher = phiCipherFromConfig(security);
  const url = env.DATABASE_URL || `postgres://hemato:hemato@127.0.0.1:${embedded.EMBEDDED_PG_PORT}/hemato`;
  const ds = await createDataSource({ url }).initialize();
  try {
    // Patient lookups are recomputed only while an earlier PHI_HMAC_KEY is named (it opens every identity).
    const rehash = (security.PHI_PREVIOUS_HMAC_KEYS ?? []).length > 0;
    const before = await censusPhiKeys(ds);
    // Counted ahead only for --check: a real run reports what it moved (both open every identity).
    const toMove =
      rehash && check
        ? await rehashPatientLookups(ds, cipher, security.PHI_HMAC_KEY, { batchSize, dryRun: true })
        : undefined;
    console.log(
      JSON.stringify({ current_key_id: cipher.keyId, before, ...(toMove ? { lookups_to_move: toMove } : {}) }),
    );
    if (check) return leftOver(before, cipher.keyId) === 0 && !toMove?.moved ? 0 : 1;
    const result = await resealPhi(ds, cipher, { batchSize });
    const lookups = rehash ? await rehashPatientLookups(ds, cipher, security.PHI_HMAC_KEY, { batchSize }) : undefined;
    const after = await censusPhiKeys(ds);
    console.log(
      JSON.stringify({
        resealed: result.resealed,
        unreadable: result.unreadable,
        ...(lookups ? { lookups_moved: lookups } : {}),
        after,
      }),
    );
    if (lookups?.duplicates) {
      console.error(
        `phi:rotate: ${lookups.duplicates} patient(s) got a second proxy under the new PHI_HMAC_KEY (it was changed ` +
          'before PHI_PREVIOUS_HMAC_KEYS named the old one): their earlier proxies stay as they are, with their orders',
      );
    }
    const unknown = Object.keys(result.unreadable).filter((k) => k !== NOT_SEALED);
    if (unknown.length > 0) {
      console.error(
        `phi:rotate: values sealed with key id(s) ${unknown.join(', ')} could not be opened and were left as they ` +
          'are (a key missing from PHI_PREVIOUS_KEYS, or a wrong key given under that id): give the right ones ' +
          'in PHI_PREVIOUS_KEYS and run again',
      );
      return 1;
    }
    return leftOver(after, cipher.keyId) === 0 ? 0 : 1;
  } finally {
    await ds.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`phi:rotate: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
