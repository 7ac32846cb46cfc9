import { createHash, createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import type { HematoRole } from './contract';
import { HEMATO_ROLES } from './contract';
import { HematoApiError } from './errors';

/** JWT algorithms the reference allows on the key path. */
export type HematoJwtAlg = 'RS384' | 'RS256';

/** Session auth: `POST /auth/login` with the user and the sha256 of the password. */
export interface HematoSessionAuthOptions {
  method: 'session';
  user: string;
  /** The password; only its sha256 hex digest ever leaves the process. */
  password?: string;
  /** Or the sha256 hex digest of the password, for deployments that never hold the password. */
  passHash?: string;
}

/** Key auth: the client signs its own short-lived JWTs with a registered RSA key. */
export interface HematoKeyAuthOptions {
  method: 'key';
  /** PEM private key (PKCS#8 or PKCS#1), or a loaded `KeyObject`. */
  privateKey: string | KeyObject;
  /** `kid` of the registered public key; sent on every token. */
  keyId: string;
  /** `iss`: your organisation id. */
  issuer: string;
  /** `sub`: a user id of your organisation. */
  subject: string;
  /** `role` claim, default `service`. */
  role?: HematoRole;
  /** Default `RS384`. */
  alg?: HematoJwtAlg;
  /** Token lifetime, default 300 s (the service treats anything older than 1 h as expired). */
  tokenTtlSeconds?: number;
  /** Sign a fresh token when the cached one has less than this left, default 60 s. */
  refreshBeforeSeconds?: number;
  /**
   * Clock used for `iat`/`exp`, in ms since the epoch (default `Date.now`). Lets a deployment
   * correct a known skew; tests use it to produce expired and future tokens.
   */
  now?: () => number;
}

/**
 * How far in the past a self-signed token's `iat` is put. The reference: "A token issued in future is
 * invalid" — a client clock up to this much ahead of the service's is then still accepted.
 */
export const IAT_BACKDATE_S = 30;

/** "A token more than 1 hour is considered expired" (reference), counted from `iat`. */
export const MAX_TOKEN_AGE_S = 3600;

/** Either way of authenticating to Hemato.AI. */
export type HematoAuthOptions = HematoSessionAuthOptions | HematoKeyAuthOptions;

/** sha256 hex of a password: the `pass_hash` the login call expects. */
export function hashPassword(password: string): string {
  return createHash('sha256').update(password, 'utf8').digest('hex');
}

/**
 * Loads an RSA private key from a PEM string or a PEM file. Accepts PKCS#8 (`BEGIN PRIVATE KEY`)
 * and PKCS#1 (`BEGIN RSA PRIVATE KEY`, what `ssh-keygen -m PEM` writes).
 */
export function loadPrivateKey(source: { pem?: string; file?: string }): KeyObject {
  let pem = source.pem;
  if (pem === undefined && source.file !== undefined) {
    try {
      pem = readFileSync(source.file, 'utf8');
    } catch (e) {
      throw new HematoApiError({
        kind: 'config',
        message: `cannot read the Hemato.AI private key file ${source.file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      });
    }
  }
  if (pem === undefined) throw new HematoApiError({ kind: 'config', message: 'no Hemato.AI private key given' });
  // Environment variables often carry PEMs with literal "\n".
  if (!pem.includes('\n') && pem.includes('\\n')) pem = pem.replace(/\\n/g, '\n');
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new HematoApiError({ kind: 'config', message: 'the Hemato.AI private key is not a valid PEM private key' });
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new HematoApiError({ kind: 'config', message: 'the Hemato.AI private key must be an RSA key (RS384/RS256)' });
  }
  return key;
}

/**
 * Supplies the `Authorization` header value (a raw token: the reference uses no `Bearer ` prefix)
 * and recovers from a 401.
 */
export interface HematoAuthProvider {
  readonly method: 'session' | 'key';
  /** A token to send; logs in or signs one when needed. */
  token(): Promise<string>;
  /**
   * Called after a 401 answered `rejected`. Returns true when a different token is now available
   * (the caller retries once), false when retrying cannot help.
   */
  renew(rejected: string): Promise<boolean>;
}

/** Performs the login call for {@link SessionAuth}; implemented by the client. */
export type LoginFn = (user: string, passHash: string) => Promise<string>;

/** Session auth: logs in lazily, keeps the token, logs in again once after a 401. */
export class SessionAuth implements HematoAuthProvider {
  readonly method = 'session' as const;
  private current?: string;
  private inflight?: Promise<string>;
  private readonly passHash: string;

  constructor(
    private readonly opts: HematoSessionAuthOptions,
    private readonly login: LoginFn,
  ) {
    if (!opts.user) throw new HematoApiError({ kind: 'config', message: 'session auth needs a user' });
    if (opts.passHash !== undefined) {
      if (!/^[0-9a-fA-F]{64}$/.test(opts.passHash)) {
        throw new HematoApiError({ kind: 'config', message: 'the pass hash must be 64 hex characters (sha256)' });
      }
      this.passHash = opts.passHash.toLowerCase();
    } else if (opts.password !== undefined) {
      this.passHash = hashPassword(opts.password);
    } else {
      throw new HematoApiError({ kind: 'config', message: 'session auth needs a password or a pass hash' });
    }
  }

  /** Logs in now (one login at a time; concurrent callers share it) and keeps the token. */
  async loginNow(): Promise<string> {
    this.inflight ??= this.login(this.opts.user, this.passHash).finally(() => {
      this.inflight = undefined;
    });
    this.current = await this.inflight;
    return this.current;
  }

  async token(): Promise<string> {
    return this.current ?? this.loginNow();
  }

  async renew(rejected: string): Promise<boolean> {
    // Another request may already have logged in again after the same expiry.
    if (this.current !== undefined && this.current !== rejected) return true;
    this.current = undefined;
    await this.loginNow();
    return true;
  }
}

/** Key auth: signs short-lived JWTs with `jose`, reusing one until it nears expiry. */
export class KeyAuth implements HematoAuthProvider {
  readonly method = 'key' as const;
  private readonly key: KeyObject;
  private readonly alg: HematoJwtAlg;
  private readonly role: HematoRole;
  private readonly ttl: number;
  private readonly refreshBefore: number;
  private readonly now: () => number;
  private cached?: { token: string; exp: number };

  constructor(
    private readonly opts: HematoKeyAuthOptions,
    private readonly audience: string,
  ) {
    const missing = (['keyId', 'issuer', 'subject'] as const).filter((k) => !opts[k]);
    if (missing.length > 0) {
      throw new HematoApiError({ kind: 'config', message: `key auth needs ${missing.join(', ')}` });
    }
    this.key = typeof opts.privateKey === 'string' ? loadPrivateKey({ pem: opts.privateKey }) : opts.privateKey;
    this.alg = opts.alg ?? 'RS384';
    if (this.alg !== 'RS384' && this.alg !== 'RS256') {
      throw new HematoApiError({ kind: 'config', message: 'key auth signs with RS384 or RS256 only' });
    }
    this.role = opts.role ?? 'service';
    if (!HEMATO_ROLES.includes(this.role)) {
      throw new HematoApiError({ kind: 'config', message: `role must be one of ${HEMATO_ROLES.join(', ')}` });
    }
    this.ttl = opts.tokenTtlSeconds ?? 300;
    // The service rejects tokens older than an hour whatever `exp` says.
    if (this.ttl < 10 || this.ttl > 3600) {
      throw new HematoApiError({ kind: 'config', message: 'tokenTtlSeconds must be between 10 and 3600' });
    }
    this.refreshBefore = Math.min(opts.refreshBeforeSeconds ?? 60, Math.floor(this.ttl / 2));
    this.now = opts.now ?? Date.now;
  }

  /**
   * Signs a new token now (claims `jti iss iat exp aud sub role kid`, header `alg kid typ`). `iat` is set
   * {@link IAT_BACKDATE_S} in the past: the service refuses a token "issued in future", so a clock a little
   * ahead of the service's must not get every token refused. `exp` still counts from now, capped so the
   * token never outlives the service's 1-hour age limit counted from `iat`.
   */
  async sign(): Promise<string> {
    const nowS = Math.floor(this.now() / 1000);
    const iat = nowS - IAT_BACKDATE_S;
    const exp = Math.min(nowS + this.ttl, iat + MAX_TOKEN_AGE_S);
    // `kid` is one of the reference's JWT claims (required with RS256); the header carries it too (JOSE).
    const token = await new SignJWT({ role: this.role, kid: this.opts.keyId })
      .setProtectedHeader({ alg: this.alg, kid: this.opts.keyId, typ: 'JWT' })
      .setJti(randomUUID())
      .setIssuer(this.opts.issuer)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setAudience(this.audience)
      .setSubject(this.opts.subject)
      .sign(this.key);
    this.cached = { token, exp };
    return token;
  }

  async token(): Promise<string> {
    const nowS = Math.floor(this.now() / 1000);
    if (this.cached && this.cached.exp - nowS > this.refreshBefore) return this.cached.token;
    return this.sign();
  }

  async renew(rejected: string): Promise<boolean> {
    if (this.cached && this.cached.token !== rejected) return true;
    // A fresh jti/iat can help (e.g. a token rejected as replayed or as just expired); a wrong
    // key or audience will fail again and the caller stops after this one retry.
    await this.sign();
    return true;
  }
}
