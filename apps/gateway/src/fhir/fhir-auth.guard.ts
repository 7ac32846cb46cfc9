import { timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig, type FhirApiKey } from '@hemato/common';
import { FhirOperationError } from '@hemato/fhir';
import type { Request } from 'express';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';

const log = createLogger('fhir-auth');

/**
 * Who called, and the scopes it carries. The client is named by its API key (`name:key`; `api-key-<n>` for
 * a bare key, never the key itself), `jwt:<client_id, else sub>` for a JWT, or `signature` for a signed
 * rest-hook call.
 */
export interface FhirClient {
  id: string;
  kind: 'api-key' | 'jwt' | 'signature';
  /** JWT scopes; null for API keys (all allowed). */
  scopes: string[] | null;
  /**
   * Sees and changes every FHIR order (the EHR, an operator): listed in FHIR_ADMIN_CLIENTS, or a bare API
   * key (all keys saw everything before keys had names). Otherwise only the orders this client placed.
   */
  allOrders: boolean;
}

export type FhirRequest = Request & { fhirClient?: FhirClient };

/** The part of a caller that decides which orders it may see and change. */
export type OrderCaller = Pick<FhirClient, 'id' | 'allOrders'>;

/** True when the caller may see and change the order; another client's order is to be answered as absent. */
export function mayAccess(caller: OrderCaller, order: { sourceClient: string | null }): boolean {
  return caller.allOrders || (order.sourceClient !== null && order.sourceClient === caller.id);
}

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
  private readonly admins: Set<string>;
  private readonly hookClients: Set<string>;

  constructor(@Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'fhir'>) {
    if (config.fhir.FHIR_JWKS_URL) this.jwks = createRemoteJWKSet(new URL(config.fhir.FHIR_JWKS_URL));
    this.admins = new Set(config.fhir.FHIR_ADMIN_CLIENTS);
    this.hookClients = new Set(config.fhir.FHIR_SUBSCRIPTION_CLIENTS);
    const keys = config.fhir.FHIR_API_KEYS;
    const bare = keys.filter((k) => !k.named).length;
    if (keys.length > 1 && bare > 0) {
      log.warn(
        { unnamedKeys: bare },
        "unnamed FHIR API keys see every client's orders: give each client its own name (FHIR_API_KEYS=name:key)",
      );
    }
    this.warnAboutHookCallers();
  }

  private keyClient(k: FhirApiKey): FhirClient {
    return { id: k.client, kind: 'api-key', scopes: null, allOrders: !k.named || this.admins.has(k.client) };
  }

  /**
   * Whether this client may call the Subscription rest-hook. The hook acts for the EHR (it reads and
   * searches the EHR and takes orders in EHR-wide, as `ehr-subscription`), so only its caller(s) may: those
   * named in FHIR_SUBSCRIPTION_CLIENTS (`*`: any valid client, as before this setting), by default the
   * EHR-wide clients (FHIR_ADMIN_CLIENTS and unnamed keys). A lab client's key is refused.
   */
  mayCallSubscriptionHook(client: Pick<FhirClient, 'id' | 'allOrders'>): boolean {
    if (this.hookClients.size === 0) return client.allOrders;
    return this.hookClients.has('*') || this.hookClients.has(client.id);
  }

  /** The first FHIR API key the hook accepts: the one the Subscription we create on the EHR sends. */
  subscriptionHookKey(): string | undefined {
    return this.config.fhir.FHIR_API_KEYS.find((k) => this.mayCallSubscriptionHook(this.keyClient(k)))?.key;
  }

  /** Start-up warnings: the hook open to several clients, or a FHIR_SUBSCRIPTION_CLIENTS entry naming no one. */
  private warnAboutHookCallers(): void {
    const { FHIR_API_KEYS: keys, FHIR_SUBSCRIPTION_CLIENTS: listed, FHIR_ADMIN_CLIENTS: admins } = this.config.fhir;
    if (this.hookClients.has('*')) {
      log.warn(
        {},
        'FHIR_SUBSCRIPTION_CLIENTS=*: any valid FHIR client may call the Subscription hook and make the gateway search the EHR; name its caller(s) instead',
      );
      return;
    }
    if (listed.length === 0) {
      // Only the EHR-wide clients; several of them means several parties may trigger EHR searches.
      const open = keys.filter((k) => this.keyClient(k).allOrders).length;
      const jwtAdmins = this.config.fhir.FHIR_JWKS_URL ? admins.filter((a) => a.startsWith('jwt:')).length : 0;
      if (open + jwtAdmins > 1) {
        log.warn(
          { hookClients: open + jwtAdmins },
          'the Subscription hook accepts every EHR-wide FHIR client (unnamed keys and FHIR_ADMIN_CLIENTS): name its caller(s) in FHIR_SUBSCRIPTION_CLIENTS',
        );
      }
      return;
    }
    // Entries are named by place, not quoted: a key pasted here by mistake must not reach the logs.
    const known = new Set(keys.map((k) => k.client));
    const unknown = listed
      .map((name, i) => ({ name, entry: i + 1 }))
      .filter(({ name }) => !known.has(name) && !name.startsWith('jwt:'))
      .map(({ entry }) => entry);
    if (unknown.length > 0) {
      log.warn(
        { entries: unknown },
        'FHIR_SUBSCRIPTION_CLIENTS entries that name no FHIR_API_KEYS client (nor jwt:<id>): nobody calls the hook with them',
      );
    }
  }

  /** The client behind a bearer token, or undefined when there is none / it is invalid. */
  async authenticate(header: string | undefined): Promise<FhirClient | undefined> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
    if (!token) return undefined;
    // Every key compared, so the time taken does not tell which entry (or none) matched.
    let match: FhirApiKey | undefined;
    for (const k of this.config.fhir.FHIR_API_KEYS) if (sameSecret(k.key, token) && !match) match = k;
    if (match) return this.keyClient(match);
    if (!this.jwks || token.split('.').length !== 3) return undefined;
    try {
      const { payload } = await jwtVerify(token, this.jwks, {
        issuer: this.config.fhir.FHIR_JWT_ISSUER || undefined,
        audience: this.config.fhir.FHIR_JWT_AUDIENCE || undefined,
        // An access token without an expiry would be good for ever once leaked (RFC 9068 requires exp).
        requiredClaims: ['exp'],
      });
      const name = clientOf(payload);
      if (!name) {
        // Orders belong to a client: a token naming none could own nothing and read nothing of its own.
        log.info({}, 'FHIR JWT without client_id or sub rejected');
        return undefined;
      }
      const id = `jwt:${name}`;
      return { id, kind: 'jwt', scopes: scopesOf(payload), allOrders: this.admins.has(id) };
    } catch (err) {
      log.info({ reason: (err as Error).message }, 'FHIR JWT rejected');
      return undefined;
    }
  }
}

/** The OAuth client a token was issued to: `client_id` (RFC 9068), else `sub` (a client_credentials token). */
function clientOf(payload: JWTPayload): string | undefined {
  const id = typeof payload.client_id === 'string' && payload.client_id ? payload.client_id : payload.sub;
  return id || undefined;
}

function scopesOf(payload: JWTPayload): string[] {
  const s = payload.scope ?? payload.scp;
  if (Array.isArray(s)) return s.map(String);
  return typeof s === 'string' ? s.split(/\s+/).filter(Boolean) : [];
}

/** A FHIR interaction, as SMART v2 scopes name them: c(reate), r(ead), u(pdate), d(elete), s(earch). */
export type FhirInteraction = 'c' | 'r' | 'u' | 'd' | 's';

/**
 * `<context>/<type>.<permissions>`: SMART v1 `read` (= `rs`), `write` (= `cud`), `*` (= `cruds`), or SMART
 * v2 letters in the order `cruds` (`c`, `rs`, `cruds`, ...). A v2 scope narrowed by `?param=value` is not
 * matched: we cannot enforce the narrowing, so it grants nothing here.
 */
const SCOPE = /^(system|user|patient)\/([A-Za-z]+|\*)\.(read|write|\*|c?r?u?d?s?)$/;
const V1: Record<string, string> = { read: 'rs', write: 'cud', '*': 'cruds' };

/** The contexts of the scopes that would grant `interaction` on `resourceType` (system, user, patient). */
function grantingContexts(scopes: string[], resourceType: string, interaction: FhirInteraction): Set<string> {
  const out = new Set<string>();
  for (const s of scopes) {
    const m = SCOPE.exec(s);
    if (!m || !m[3]) continue;
    if (m[2] !== '*' && m[2] !== resourceType) continue;
    if ((V1[m[3]] ?? m[3]).includes(interaction)) out.add(m[1]!);
  }
  return out;
}

/**
 * Whether SMART scopes allow an interaction; API keys (scopes null) may do all. Only `system/` scopes
 * grant: a `patient/` scope allows one patient's data and a `user/` scope what one user may see, and we
 * keep no patient compartment or user permissions to narrow to, so honouring them would open every
 * patient's orders. Such a token is refused, saying why.
 */
export function scopeDecision(
  scopes: string[] | null,
  resourceType: string,
  interaction: FhirInteraction,
): { ok: true } | { ok: false; reason: string } {
  if (scopes === null) return { ok: true };
  const contexts = grantingContexts(scopes, resourceType, interaction);
  if (contexts.has('system')) return { ok: true };
  const verb = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' }[interaction];
  if (contexts.size > 0) {
    return {
      ok: false,
      reason: `Only SMART system/ scopes are accepted (SMART Backend Services); patient/ and user/ scopes do not allow ${verb} on ${resourceType} here`,
    };
  }
  return {
    ok: false,
    reason: `Token scopes do not allow ${verb} on ${resourceType} (needs system/${resourceType}.${interaction} or broader)`,
  };
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
      { type: string; interaction: FhirInteraction } | undefined;
    if (scope) {
      const decision = scopeDecision(client.scopes, scope.type, scope.interaction);
      if (!decision.ok) {
        log.info(
          { client: client.id, type: scope.type, interaction: scope.interaction },
          'FHIR request refused by scopes',
        );
        throw FhirOperationError.forbidden(decision.reason);
      }
    }
    req.fhirClient = client;
    return true;
  }
}

const FHIR_SCOPE = 'hemato:fhir-scope';

/** Declares which resource type and interaction a handler needs (checked against JWT scopes). */
export const FhirScope =
  (type: string, interaction: FhirInteraction): MethodDecorator =>
  (_target, _key, descriptor) => {
    Reflect.defineMetadata(FHIR_SCOPE, { type, interaction }, descriptor.value as object);
    return descriptor;
  };
