/**
 * `npm run keys:generate [-- --out DIR] [--kid ID] [--bits 4096]`
 *
 * Writes a new RSA key pair for Hemato.AI key auth: `<kid>.private.pem` (PKCS#8, mode 0600) and
 * `<kid>.public.pem` (SPKI), then prints the public key to register with Hemato.AI and the
 * environment lines to use it. Never overwrites an existing key. Self-contained (no internal imports).
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function main(): number {
  const kid = arg('kid') ?? randomUUID();
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(kid)) {
    console.error('keys:generate: --kid may hold letters, digits, . _ - only');
    return 2;
  }
  const bits = Number(arg('bits') ?? 4096);
  if (![2048, 3072, 4096].includes(bits)) {
    console.error('keys:generate: --bits must be 2048, 3072 or 4096');
    return 2;
  }
  const out = path.resolve(arg('out') ?? path.join(process.env.DATA_DIR ?? './.data', 'hemato-keys'));
  const privateFile = path.join(out, `${kid}.private.pem`);
  const publicFile = path.join(out, `${kid}.public.pem`);
  if (existsSync(privateFile) || existsSync(publicFile)) {
    console.error(`keys:generate: ${privateFile} already exists; not overwriting`);
    return 1;
  }
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  mkdirSync(out, { recursive: true, mode: 0o700 });
  writeFileSync(privateFile, privateKey, { mode: 0o600, flag: 'wx' });
  writeFileSync(publicFile, publicKey, { mode: 0o644, flag: 'wx' });
  process.stdout.write(
    [
      `Hemato.AI key pair written (RSA ${bits}, kid ${kid}):`,
      `  private: ${privateFile}`,
      `  public:  ${publicFile}`,
      '',
      'Register this public key with Hemato.AI (key id above):',
      publicKey.trim(),
      '',
      'Then set:',
      'HEMATO_AUTH=key',
      `HEMATO_KEY_FILE=${privateFile}`,
      `HEMATO_KEY_ID=${kid}`,
      'HEMATO_ISSUER=<your organisation id>',
      'HEMATO_SUBJECT=<a user id of your organisation>',
      '',
    ].join('\n'),
  );
  return 0;
}

process.exitCode = main();
