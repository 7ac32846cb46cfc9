import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AppConfig } from '@hemato/common';

/** A user who can log in with `/auth/login` (session auth). */
export interface SandboxUser {
  id: string;
  email: string;
  screen_name: string;
  /** sha256 hex of the password, lower case. */
  pass_hash: string;
}

export interface OrganisationKey {
  kid: string;
  key: KeyObject;
}

/** An organisation for key auth: `iss` of its JWTs, its registered public keys and the user ids it may sign for. */
export interface Organisation {
  id: string;
  keys: OrganisationKey[];
  /** Empty: any `sub` is accepted. */
  subjects: string[];
}

/** Shape of SANDBOX_CONFIG_FILE (JSON). */
export interface SandboxConfigFile {
  users?: Array<{ email: string; pass_hash?: string; password?: string; id?: string; screen_name?: string }>;
  organisations?: Array<{
    id: string;
    subjects?: string[];
    keys: Array<{ kid: string; public_key?: string; public_key_file?: string }>;
  }>;
  faults?: Record<string, unknown>;
}

export const DEFAULT_USER_EMAIL = 'ali@example.com';
export const DEFAULT_USER_PASSWORD = 'hemato-sandbox';

export const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

/** A stable uuid-shaped id derived from a name, so a user keeps their id across restarts. */
export function stableId(name: string): string {
  const h = createHash('sha1').update(`hemato-sandbox:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** A public key from PEM text (SPKI or PKCS#1), a path to such a file, or a JWK in JSON. */
export function readPublicKey(text: string): KeyObject {
  const t = text.trim();
  if (t.startsWith('{'))
    return createPublicKey({ key: JSON.parse(t) as import('node:crypto').JsonWebKey, format: 'jwk' });
  if (t.includes('-----BEGIN')) return createPublicKey(t.replace(/\\n/g, '\n'));
  if (existsSync(t)) return readPublicKey(readFileSync(t, 'utf8'));
  throw new Error('public key is neither PEM text, a JWK nor a readable file');
}

function user(email: string, passHash: string, id?: string, screenName?: string): SandboxUser {
  const local = email.split('@')[0] ?? email;
  return {
    id: id ?? stableId(email),
    email,
    screen_name: screenName ?? local.charAt(0).toUpperCase() + local.slice(1),
    pass_hash: passHash.toLowerCase(),
  };
}

/**
 * Who may call the sandbox: users (session auth) and organisations with public keys (key auth),
 * from SANDBOX_CONFIG_FILE and the environment. Without any users configured, the reference's own
 * example user `ali@example.com` (password `hemato-sandbox`) exists.
 */
export class Directory {
  readonly users = new Map<string, SandboxUser>();
  readonly organisations = new Map<string, Organisation>();
  fileFaults: Record<string, unknown> | undefined;

  static fromConfig(config: AppConfig['sandbox']): Directory {
    const dir = new Directory();
    let file: SandboxConfigFile = {};
    if (config.SANDBOX_CONFIG_FILE) {
      file = JSON.parse(readFileSync(config.SANDBOX_CONFIG_FILE, 'utf8')) as SandboxConfigFile;
    }
    for (const u of file.users ?? []) {
      const hash = u.pass_hash ?? (u.password !== undefined ? sha256Hex(u.password) : undefined);
      if (!u.email || !hash) throw new Error(`SANDBOX_CONFIG_FILE: user ${u.email ?? '?'} needs pass_hash or password`);
      dir.addUser(user(u.email, hash, u.id, u.screen_name));
    }
    for (const entry of config.SANDBOX_USERS) {
      const at = entry.lastIndexOf(':');
      if (at <= 0) throw new Error('SANDBOX_USERS: entries are email:sha256hex');
      dir.addUser(user(entry.slice(0, at), entry.slice(at + 1)));
    }
    if (dir.users.size === 0) dir.addUser(user(DEFAULT_USER_EMAIL, sha256Hex(DEFAULT_USER_PASSWORD), undefined, 'Ali'));
    for (const o of file.organisations ?? []) {
      dir.addOrganisation(
        o.id,
        o.keys.map((k) => ({
          kid: k.kid,
          key: readPublicKey(k.public_key ?? readFileSync(k.public_key_file ?? '', 'utf8')),
        })),
        o.subjects ?? [],
      );
    }
    if (config.SANDBOX_KEY_ISSUER && config.SANDBOX_PUBLIC_KEY) {
      dir.addOrganisation(
        config.SANDBOX_KEY_ISSUER,
        [{ kid: config.SANDBOX_KEY_ID ?? 'default', key: readPublicKey(config.SANDBOX_PUBLIC_KEY) }],
        config.SANDBOX_KEY_SUBJECTS,
      );
    }
    dir.fileFaults = file.faults;
    return dir;
  }

  addUser(u: SandboxUser): void {
    this.users.set(u.email.toLowerCase(), u);
  }

  /** Registers (or extends) an organisation; keys with an existing kid are replaced. */
  addOrganisation(id: string, keys: OrganisationKey[], subjects: string[]): Organisation {
    const org = this.organisations.get(id) ?? { id, keys: [], subjects: [] };
    for (const k of keys) {
      org.keys = org.keys.filter((old) => old.kid !== k.kid);
      org.keys.push(k);
    }
    org.subjects = [...new Set([...org.subjects, ...subjects])];
    this.organisations.set(id, org);
    return org;
  }
}
