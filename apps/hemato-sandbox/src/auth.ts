import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { compactVerify, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { HEMATO_ROLES, type HematoRole } from '@hemato/hemato-client';
import type { Directory, SandboxUser } from './directory';

/** Marks the sandbox's own session tokens, so they are told apart from key-signed JWTs. */
const SESSION_KID = 'hemato-sandbox-session';
/** Clock skew tolerated on `iat` / `exp`. */
export const SKEW_S = 5;
/** A key-signed token older than this is expired, whatever its `exp` says. */
export const MAX_AGE_S = 3600;

export interface Principal {
  method: 'session' | 'key';
  /** Studies belong to this: the user id (session) or the organisation id (key). */
  owner: string;
  subject: string;
  role: HematoRole;
  organisation?: string;
  email?: string;
}

export interface AuthCheck {
  check: string;
  ok: boolean;
  detail: string;
}

/** What `/auth/hello` tells about a token: each check, and the first reason it is refused. */
export interface AuthVerdict {
  valid: boolean;
  method: 'session' | 'key' | 'unknown';
  checks: AuthCheck[];
  reason?: string;
  principal?: Principal;
}

export interface AuthOptions {
  directory: Directory;
  audience: string;
  sessionTtlS: number;
  /** HS256 secret of session tokens; persisted with the data folder so sessions survive a restart. */
  sessionSecret?: Uint8Array;
}

/** Session login and token checks as the reference describes them (see `shared/spec`). */
export class SandboxAuth {
  readonly sessionSecret: Uint8Array;

  constructor(private readonly options: AuthOptions) {
    this.sessionSecret = options.sessionSecret ?? randomBytes(32);
  }

  /** `/auth/login`: the user and a fresh session token, or undefined when the pair is wrong. */
  async login(email: string, passHash: string): Promise<{ user: SandboxUser; token: string } | undefined> {
    const user = this.options.directory.users.get(email.toLowerCase());
    if (!user || user.pass_hash !== passHash.toLowerCase()) return undefined;
    const token = await new SignJWT({ email: user.email, role: 'user' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: SESSION_KID })
      .setIssuer('hemato-sandbox')
      .setSubject(user.id)
      .setAudience(this.options.audience)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + this.options.sessionTtlS)
      .sign(this.sessionSecret);
    return { user, token };
  }

  /** Checks an Authorization header value (raw token or `Bearer <token>`), recording every check. */
  async verify(header: string | undefined): Promise<AuthVerdict> {
    const checks: AuthCheck[] = [];
    const add = (check: string, ok: boolean, detail: string) => checks.push({ check, ok, detail });
    const done = (method: AuthVerdict['method'], principal?: Principal): AuthVerdict => {
      const failed = checks.find((c) => !c.ok);
      return failed
        ? { valid: false, method, checks, reason: `${failed.check}: ${failed.detail}` }
        : { valid: true, method, checks, principal };
    };

    const token = header
      ?.trim()
      .replace(/^Bearer\s+/i, '')
      .trim();
    if (!token) {
      add('present', false, 'no Authorization header: send the token as the Authorization header');
      return done('unknown');
    }
    add('present', true, 'Authorization header present');

    let head: ReturnType<typeof decodeProtectedHeader>;
    let claims: ReturnType<typeof decodeJwt>;
    try {
      head = decodeProtectedHeader(token);
      claims = decodeJwt(token);
      add('format', true, 'a compact JWS (header.payload.signature)');
    } catch {
      add('format', false, 'not a compact JWT (three base64url parts separated by dots)');
      return done('unknown');
    }

    if (head.kid === SESSION_KID) return this.verifySession(token, add, done);
    return this.verifyKeySigned(token, head, claims, add, done);
  }

  private async verifySession(
    token: string,
    add: (check: string, ok: boolean, detail: string) => void,
    done: (method: AuthVerdict['method'], principal?: Principal) => AuthVerdict,
  ): Promise<AuthVerdict> {
    try {
      const { payload } = await jwtVerify(token, this.sessionSecret, {
        algorithms: ['HS256'],
        audience: this.options.audience,
        clockTolerance: SKEW_S,
      });
      add('session', true, 'session token signed by this sandbox and not expired');
      const user = [...this.options.directory.users.values()].find((u) => u.id === payload.sub);
      add('user', Boolean(user), user ? `user ${user.email}` : 'the user of this session no longer exists');
      return done(
        'session',
        user ? { method: 'session', owner: user.id, subject: user.id, role: 'user', email: user.email } : undefined,
      );
    } catch (err) {
      const detail =
        err instanceof joseErrors.JWTExpired
          ? 'session expired: log in again with /auth/login'
          : err instanceof joseErrors.JWSSignatureVerificationFailed
            ? 'signature does not match (a token from another sandbox run?): log in again'
            : `session token refused: ${(err as Error).message}`;
      add('session', false, detail);
      return done('session');
    }
  }

  private async verifyKeySigned(
    token: string,
    head: ReturnType<typeof decodeProtectedHeader>,
    claims: ReturnType<typeof decodeJwt>,
    add: (check: string, ok: boolean, detail: string) => void,
    done: (method: AuthVerdict['method'], principal?: Principal) => AuthVerdict,
  ): Promise<AuthVerdict> {
    const alg = head.alg ?? '';
    const algOk = alg === 'RS384' || alg === 'RS256';
    add(
      'alg',
      algOk,
      algOk
        ? `${alg} is accepted`
        : `alg ${alg || '(none)'} is not accepted: sign with RS384 or RS256 (RSASSA-PKCS1-v1_5)`,
    );

    // The reference lists `kid` in its table of JWT claims ("Only required if using `RS256`") and shows it
    // in the example's payload: RS256 needs the claim. The JOSE header is its usual place: a header kid is
    // read too, but one that names another key than the claim makes the token ambiguous and is refused.
    const headKid = typeof head.kid === 'string' ? head.kid : undefined;
    const claimKid = typeof claims.kid === 'string' ? claims.kid : undefined;
    const kid = claimKid ?? headKid;
    if (headKid !== undefined && claimKid !== undefined && headKid !== claimKid) {
      add('kid', false, `the header kid ${headKid} and the kid claim ${claimKid} name different keys`);
    } else if (alg === 'RS256') {
      add(
        'kid',
        claimKid !== undefined,
        claimKid !== undefined
          ? `kid ${claimKid}`
          : headKid !== undefined
            ? 'RS256 tokens must carry kid as a claim (the reference lists it among the JWT claims), not only in the header'
            : 'RS256 tokens must name their key in the kid claim',
      );
    } else add('kid', true, kid ? `kid ${kid}` : 'no kid (optional with RS384): every key of the issuer is tried');

    const missing: string[] = [];
    const wrongType: string[] = [];
    for (const name of ['jti', 'iss', 'sub', 'role'] as const) {
      if (claims[name] === undefined) missing.push(name);
      else if (typeof claims[name] !== 'string' || claims[name] === '')
        wrongType.push(`${name} must be a non-empty string`);
    }
    for (const name of ['iat', 'exp'] as const) {
      if (claims[name] === undefined) missing.push(name);
      else if (typeof claims[name] !== 'number' || !Number.isFinite(claims[name]))
        wrongType.push(`${name} must be a Unix time (number)`);
    }
    const aud = claims.aud;
    if (aud === undefined) missing.push('aud');
    else if (!(typeof aud === 'string' || (Array.isArray(aud) && aud.every((a) => typeof a === 'string'))))
      wrongType.push('aud must be a string or an array of strings');
    const claimsOk = missing.length === 0 && wrongType.length === 0;
    add(
      'claims',
      claimsOk,
      claimsOk
        ? 'jti, iss, iat, exp, aud, sub and role present'
        : [missing.length ? `missing required claim(s): ${missing.join(', ')}` : '', ...wrongType]
            .filter(Boolean)
            .join('; '),
    );

    const iss = typeof claims.iss === 'string' ? claims.iss : undefined;
    const org = iss ? this.options.directory.organisations.get(iss) : undefined;
    add(
      'issuer',
      Boolean(org),
      org ? `organisation ${iss}` : `iss ${iss ?? '(none)'} is not a registered organisation`,
    );

    let candidates: Array<{ kid: string; key: KeyObject }> = [];
    if (org) candidates = kid ? org.keys.filter((k) => k.kid === kid) : org.keys;
    add(
      'key',
      candidates.length > 0,
      candidates.length > 0
        ? `registered key${kid ? ` ${kid}` : 's'} found`
        : org
          ? `no registered public key with kid ${kid ?? '(none)'} for ${iss}`
          : 'no key to check the signature with (unknown issuer)',
    );

    let signatureOk = false;
    if (algOk && candidates.length > 0) {
      for (const c of candidates) {
        try {
          await compactVerify(token, c.key, { algorithms: [alg] });
          signatureOk = true;
          break;
        } catch {
          // try the next key of the organisation
        }
      }
      add(
        'signature',
        signatureOk,
        signatureOk ? 'signature verified' : 'signature does not verify with the registered key',
      );
    } else {
      add('signature', false, 'not checked: no acceptable algorithm or key');
    }

    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    const audOk = audiences.includes(this.options.audience);
    add(
      'aud',
      audOk,
      audOk
        ? `audience ${this.options.audience}`
        : `aud ${JSON.stringify(aud ?? null)} must be (or include) ${this.options.audience}`,
    );

    const now = Math.floor(Date.now() / 1000);
    const iat = typeof claims.iat === 'number' ? claims.iat : undefined;
    if (iat === undefined) {
      add('iat', false, 'iat missing');
    } else if (iat > now + SKEW_S) {
      add('iat', false, `issued in the future (iat is ${iat - now} s ahead of the sandbox clock)`);
    } else if (now - iat > MAX_AGE_S) {
      add(
        'iat',
        false,
        `issued ${Math.round((now - iat) / 60)} minutes ago: tokens older than 1 hour are expired whatever exp says`,
      );
    } else {
      add('iat', true, `issued ${now - iat} s ago`);
    }
    const exp = typeof claims.exp === 'number' ? claims.exp : undefined;
    add(
      'exp',
      exp !== undefined && exp + SKEW_S > now,
      exp === undefined ? 'exp missing' : exp + SKEW_S > now ? `expires in ${exp - now} s` : 'expired',
    );

    const role = claims.role;
    const roleOk = typeof role === 'string' && (HEMATO_ROLES as readonly string[]).includes(role);
    add(
      'role',
      roleOk,
      roleOk
        ? `role ${role as string}`
        : `role ${JSON.stringify(role ?? null)} must be one of ${HEMATO_ROLES.join(', ')}`,
    );

    const sub = typeof claims.sub === 'string' ? claims.sub : undefined;
    const subOk = Boolean(sub) && (!org || org.subjects.length === 0 || org.subjects.includes(sub as string));
    add('sub', subOk, subOk ? `user ${sub}` : `sub ${sub ?? '(none)'} is not a user of ${iss ?? 'the organisation'}`);

    return done(
      'key',
      org && sub
        ? { method: 'key', owner: org.id, subject: sub, role: role as HematoRole, organisation: org.id }
        : undefined,
    );
  }
}
