import { timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig } from '@hemato/common';
import { FhirOperationError } from '@hemato/fhir';
import type { Request } from 'express';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';

const log = createLogger('fhir-auth');

/** Who called: an API key (by index, never the key) or a JWT subject, and the scopes it carries. */
export interface FhirClient {
  id: string;
  kind: 'api-key' | 'jwt' | 'signature';
  /** JWT scopes; null for API keys (all allowed). */
  scopes: string[] | null;
}

export type FhirRequest = Request & { fhirClient?: FhirClient };

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Authenticates `Authorization: Bearer <token>`: one of FHIR_API_KEYS, or a JWT signed by a key in
 * FHIR_JWKS_URL (issuer/audience checked when configured). Answers 401 without a valid token and
 * 403 when a JWT's scopes do not cover the interaction.
 */
@Injectable()
export class FhirAuthService {
  private readonly jwks?: ReturnType<typeof createRemoteJWKSet>;

  constructor(@Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'fhir'>) {
    if (config.fhir.FHIR_JWKS_URL) this.jwks = createRemoteJWKSet(new URL(config.fhir.FHIR_JWKS_URL));
  }

  /** The client behind a bearer token, or undefined when there is none / it is invalid. */
  async authenticate(header: string | undefined): Promise<FhirClient | undefined> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
    if (!token) return undefined;
    const keys = this.config.fhir.FHIR_API_KEYS;
    const index = keys.findIndex((k) => sameSecret(k, token));
    if (index >= 0) return { id: `api-key-${index + 1}`, kind: 'api-key', scopes: null };
    if (!this.jwks || token.split('.').length !== 3) return undefined;
    try {
      const { payload } = await jwtVerify(token, this.jwks, {
        issuer: this.config.fhir.FHIR_JWT_ISSUER || undefined,
        audience: this.config.fhir.FHIR_JWT_AUDIENCE || undefined,
      });
      return { id: `jwt:${payload.sub ?? payload.client_id ?? 'unknown'}`, kind: 'jwt', scopes: scopesOf(payload) };
    } catch (err) {
      log.info({ reason: (err as Error).message }, 'FHIR JWT rejected');
      return undefined;
    }
  }
}

function scopesOf(payload: JWTPayload): string[] {
  const s = payload.scope ?? payload.scp;
  if (Array.isArray(s)) return s.map(String);
  return typeof s === 'string' ? s.split(/\s+/).filter(Boolean) : [];
}

/** True when SMART-style scopes allow `access` (`read`/`write`) on a resource type. */
export function scopeAllows(scopes: string[] | null, resourceType: string, access: 'read' | 'write'): boolean {
  if (scopes === null) return true;
  return scopes.some((s) => {
    const m = /^(system|user|patient)\/([A-Za-z*]+)\.(read|write|\*|[cruds]+)$/.exec(s);
    if (!m) return false;
    if (m[2] !== '*' && m[2] !== resourceType) return false;
    const a = m[3]!;
    if (a === '*' || a === access) return true;
    // SMART v2: c/u for write, r/s for read.
    return access === 'write' ? /[cu]/.test(a) : /[rs]/.test(a);
  });
}

/** Guard for /fhir routes: needs a valid bearer token; scopes checked by `@FhirScope` metadata. */
@Injectable()
export class FhirAuthGuard implements CanActivate {
  constructor(private readonly auth: FhirAuthService) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<FhirRequest>();
    const client = await this.auth.authenticate(req.headers.authorization);
    if (!client) throw FhirOperationError.unauthorized('A valid bearer token (API key or JWT) is required');
    const scope = Reflect.getMetadata(FHIR_SCOPE, ctx.getHandler()) as
      { type: string; access: 'read' | 'write' } | undefined;
    if (scope && !scopeAllows(client.scopes, scope.type, scope.access)) {
      throw FhirOperationError.forbidden(`Token scopes do not allow ${scope.access} on ${scope.type}`);
    }
    req.fhirClient = client;
    return true;
  }
}

const FHIR_SCOPE = 'hemato:fhir-scope';

/** Declares which resource type and access a handler needs (checked against JWT scopes). */
export const FhirScope =
  (type: string, access: 'read' | 'write'): MethodDecorator =>
  (_target, _key, descriptor) => {
    Reflect.defineMetadata(FHIR_SCOPE, { type, access }, descriptor.value as object);
    return descriptor;
  };
