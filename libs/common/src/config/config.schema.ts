import { z } from 'zod';
import { bool, int, list, optionalBool, optionalString, optionalUrl, port, secret, url } from './env-helpers';
import { fhirApiKeys } from './fhir-api-keys';
import { DEFAULT_ZIP_MAX_UNPACKED_BYTES } from '../media/zip-images-check';

/**
 * The one schema for every environment variable hemato-bridge reads, grouped by capability.
 * `.env.example` documents each of them. A process validates the sections it needs
 * (see `loadConfig`), so the sandbox alone does not ask for database secrets.
 */

export const coreSection = z.object({
  NODE_ENV: z
    .enum(['development', 'test', 'production'], { message: 'must be development, test or production' })
    .default('development'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { message: 'must be a pino level' })
    .default('info'),
  HOST: z.string().default('0.0.0.0'),
  PORT: port(3000),
  /** Base URL where Hemato.AI and the watched systems reach this gateway (callback URLs, workflow 2 lists). */
  PUBLIC_BASE_URL: optionalUrl(['http', 'https'], 'https://bridge.hospital.example'),
  DATA_DIR: z.string().default('./.data'),
  /**
   * Which peers are proxies whose X-Forwarded-For / -Proto the gateway believes (the client IP in the audit
   * log, TLS for the cookie): `loopback` (a proxy on this host), `linklocal`, `uniquelocal`, IPs or CIDRs,
   * comma-separated; `none` believes no one. Any client a listed peer is not can write its own IP.
   */
  TRUST_PROXY: z
    .string()
    .trim()
    .regex(
      /^(none|(loopback|linklocal|uniquelocal|[0-9A-Fa-f:.]+(\/\d{1,3})?)(\s*,\s*(loopback|linklocal|uniquelocal|[0-9A-Fa-f:.]+(\/\d{1,3})?))*)$/,
      'none, or a comma-separated list of loopback, linklocal, uniquelocal, IP addresses and CIDRs',
    )
    .default('loopback'),
});

/** Only read by the all-in-one `npm start` when DATABASE_URL / REDIS_URL are not set. */
export const embeddedSection = z.object({
  EMBEDDED_PG_PORT: port(54329),
  EMBEDDED_REDIS_PORT: port(63799),
});

export const databaseSection = z.object({
  DATABASE_URL: url(['postgres', 'postgresql'], 'postgres://user:pass@localhost:5432/hemato'),
  DATABASE_POOL_SIZE: int(10, 1),
});

export const redisSection = z.object({
  REDIS_URL: url(['redis', 'rediss'], 'redis://127.0.0.1:6379'),
  /** Key prefix for every BullMQ key, so several deployments (or test runs) share one Redis safely. */
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]+$/, 'letters, digits, : _ - only')
    .default('hemato'),
});

export const securitySection = z.object({
  /** HMAC key for signed callback and file URLs and FHIR search cursors (>= 32 characters). */
  CALLBACK_SIGNING_SECRET: secret('CALLBACK_SIGNING_SECRET', z.string().min(32, 'must be at least 32 characters')),
  /** AES-256-GCM key for PHI at rest: 32 bytes, base64. */
  PHI_ENCRYPTION_KEY: secret(
    'PHI_ENCRYPTION_KEY',
    z.string().refine((v) => Buffer.from(v, 'base64').length === 32, { message: 'must be 32 bytes, base64-encoded' }),
  ),
  /** Identifies PHI_ENCRYPTION_KEY in stored rows, so keys can be rotated. */
  PHI_KEY_ID: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ - only')
    .default('k1'),
  /**
   * Keys PHI_ENCRYPTION_KEY replaced, `<key id>:<32 bytes base64>` comma-separated: rows sealed with them
   * stay readable until `npm run phi:rotate` has sealed them again with the current key.
   */
  PHI_PREVIOUS_KEYS: secret(
    'PHI_PREVIOUS_KEYS',
    list().refine((entries) => entries.every((e) => parsePreviousPhiKey(e) !== null), {
      message: 'each entry must be <key id>:<32 bytes, base64> (key id: letters, digits, _ -)',
    }),
  ),
  /** HMAC key used to look up patient proxies by identifier (>= 32 characters). */
  PHI_HMAC_KEY: secret('PHI_HMAC_KEY', z.string().min(32, 'must be at least 32 characters')),
  /**
   * HMAC keys PHI_HMAC_KEY replaced, comma-separated: a patient found under one keeps her proxy (her row
   * is moved to the current key), until `npm run phi:rotate` has moved them all.
   */
  PHI_PREVIOUS_HMAC_KEYS: secret(
    'PHI_PREVIOUS_HMAC_KEYS',
    list().refine((keys) => keys.every((k) => k.length >= 32), { message: 'each key must be at least 32 characters' }),
  ),
  /** API keys for the image upload API and other machine clients, comma-separated. */
  API_KEYS: secret('API_KEYS', list()),
});

export const hematoSection = z.object({
  HEMATO_REGION: z
    .enum(['dev', 'qa', 'us', 'ca', 'eu'], { message: 'must be one of dev, qa, us, ca, eu' })
    .default('dev'),
  HEMATO_BASE_URL: optionalUrl(['http', 'https'], 'http://127.0.0.1:4010'),
  HEMATO_AUTH: z.enum(['session', 'key'], { message: 'must be session or key' }).default('session'),
  HEMATO_USER: optionalString(),
  HEMATO_PASSWORD: secret('HEMATO_PASSWORD', optionalString()),
  HEMATO_PASS_HASH: secret('HEMATO_PASS_HASH', optionalString()),
  HEMATO_KEY_FILE: optionalString(),
  HEMATO_PRIVATE_KEY: secret('HEMATO_PRIVATE_KEY', optionalString()),
  HEMATO_KEY_ID: optionalString(),
  HEMATO_ISSUER: optionalString(),
  HEMATO_SUBJECT: optionalString(),
  HEMATO_ROLE: z
    .enum(['admin', 'user', 'device', 'service'], { message: 'must be admin, user, device or service' })
    .default('service'),
  HEMATO_JWT_ALG: z.enum(['RS384', 'RS256'], { message: 'must be RS384 or RS256' }).default('RS384'),
  HEMATO_TIMEOUT_MS: int(30_000, 1),
  HEMATO_UPLOAD_TIMEOUT_MS: int(600_000, 1),
  /** Allow plain http:// to a non-loopback HEMATO_BASE_URL (a closed network, e.g. Compose with the sandbox). */
  HEMATO_ALLOW_INSECURE_HTTP: bool(false),
  HEMATO_WORKFLOW: z.enum(['1', '2'], { message: 'must be 1 or 2' }).default('1'),
  /** Order code table: `SYSTEM|CODE=task[+task]`, comma-separated. `LN` is LOINC. */
  HEMATO_ORDER_CODES: z.string().default('LN|34994-4=pbs_v1,LN|57021-8=pbs_v1'),
});

export const sandboxSection = z.object({
  SANDBOX_PORT: port(4010),
  /** Embedded `npm start` runs the sandbox in-process unless this is false. */
  SANDBOX_ENABLED: bool(true),
  SANDBOX_PROCESSING_MS: int(3000),
  SANDBOX_MAX_FILE_BYTES: int(100 * 1024 * 1024, 1),
  SANDBOX_REGION_HOST: z.string().default('dev.api.hemato.ai'),
  SANDBOX_CONFIG_FILE: optionalString(),
  SANDBOX_DATA_DIR: optionalString(),
  SANDBOX_SESSION_TTL_S: int(3600, 1),
  /** Extra users `email:sha256hex(password)`, comma-separated (besides SANDBOX_CONFIG_FILE's). */
  SANDBOX_USERS: secret('SANDBOX_USERS', list()),
  /** One organisation registered from the environment: its id (the JWT `iss`), key id and public key (PEM or file). */
  SANDBOX_KEY_ISSUER: optionalString(),
  SANDBOX_KEY_ID: optionalString(),
  SANDBOX_PUBLIC_KEY: optionalString(),
  /** User ids (`sub`) of that organisation, comma-separated; empty accepts any. */
  SANDBOX_KEY_SUBJECTS: list(),
  /** Faults on start, JSON (see README, e.g. {"error_rate":0.1}); default none. */
  SANDBOX_FAULTS: optionalString(),
  /** Hosts callbacks and workflow-2 downloads may reach over plain http (loopback always may). */
  SANDBOX_HTTP_HOSTS: list(),
  /** Requests kept in the request log (oldest dropped first). */
  SANDBOX_REQUEST_LOG_MAX: int(5000, 1),
});

export const hl7Section = z.object({
  MLLP_PORT: port(2575),
  MLLP_HOST: z.string().default('0.0.0.0'),
  MLLP_MAX_MESSAGE_BYTES: int(30 * 1024 * 1024, 1024),
  MLLP_IDLE_TIMEOUT_MS: int(600_000, 0),
  MLLP_MAX_CONNECTIONS: int(500, 1),
  /**
   * Bytes of received messages being handled at once, across connections; beyond it, connections that
   * already have a message in progress are not read until some are answered (memory stays bounded).
   */
  MLLP_MAX_INFLIGHT_BYTES: int(128 * 1024 * 1024, 1024),
  /**
   * Bytes held by messages still arriving (frames whose end has not come yet), across connections; beyond
   * it, only the connection with the largest one is read on (memory stays bounded against slow or
   * unfinished senders; connections between messages are always read).
   */
  MLLP_MAX_BUFFERED_BYTES: int(256 * 1024 * 1024, 1024),
  /** HL7 group commits in flight at once (each a transaction batching concurrent messages); about the core count. */
  MLLP_COMMIT_CONCURRENCY: int(2, 1),
  MLLP_TLS_CERT_FILE: optionalString(),
  MLLP_TLS_KEY_FILE: optionalString(),
  MLLP_TLS_CA_FILE: optionalString(),
  MLLP_TLS_REQUIRE_CLIENT_CERT: bool(false),
  /** How often the listener's certificate files are checked for a renewal (ms; 0 = never). */
  MLLP_TLS_RELOAD_MS: int(60_000, 0),
  /** Allowed senders `APP|FACILITY` (either may be `*`), comma-separated; empty allows all. */
  MLLP_ALLOWED_SENDERS: list(),
  HL7_SENDING_APP: z.string().default('HEMATO-BRIDGE'),
  HL7_SENDING_FACILITY: z.string().default('HEMATO'),
  HL7_RESULT_HOST: optionalString(),
  HL7_RESULT_PORT: port(0),
  /**
   * Results elsewhere than HL7_RESULT_HOST by their receiver (MSH-5|MSH-6: an HL7 order's sender):
   * `APP|FACILITY=host:port` (either may be `*`; `mllp://` or `mllps://` before the host forces TLS off or
   * on), comma-separated, first match wins.
   */
  HL7_RESULT_ROUTES: list().transform((entries, ctx): Hl7ResultRoute[] => {
    const routes = entries.map(parseHl7ResultRoute);
    if (routes.some((r) => r === null)) {
      ctx.addIssue({
        code: 'custom',
        message: 'each entry must be APP|FACILITY=host:port (mllp:// or mllps:// allowed before the host)',
      });
      return z.NEVER;
    }
    return routes as Hl7ResultRoute[];
  }),
  /**
   * MSH-5/6 of the ORU for an order that did not come in over HL7 (FHIR or API, with RESULT_DELIVERY=both):
   * an HL7 order's result is addressed to its own sender (MSH-3/4).
   */
  HL7_RESULT_RECEIVING_APP: z.string().default(''),
  HL7_RESULT_RECEIVING_FACILITY: z.string().default(''),
  /** Character set of the ORU (MSH-18): UTF-8, or 8859/1 for receivers that read only Latin-1. */
  HL7_RESULT_CHARSET: z.enum(['UTF-8', '8859/1'], { message: 'must be UTF-8 or 8859/1' }).default('UTF-8'),
  /**
   * OBX-3.3 of the result's own observation codes: a local coding system of HL7 table 0396, `99` and letters
   * or digits, or `L`.
   */
  HL7_RESULT_CODING_SYSTEM: z
    .string()
    .regex(/^(99[A-Za-z0-9]{1,18}|L)$/, {
      message: 'must be a local coding system of HL7 table 0396: 99 followed by letters or digits (e.g. 99HAI), or L',
    })
    .default('99HAI'),
  HL7_RESULT_TLS: bool(false),
  HL7_RESULT_TLS_CA_FILE: optionalString(),
  HL7_RESULT_TLS_CERT_FILE: optionalString(),
  HL7_RESULT_TLS_KEY_FILE: optionalString(),
  HL7_ACK_TIMEOUT_MS: int(30_000, 1),
});

export const fhirSection = z.object({
  /** `name:key` (the key of client `name`) or a bare key (client `api-key-<n>`, sees every order), comma-separated. */
  FHIR_API_KEYS: secret('FHIR_API_KEYS', fhirApiKeys()),
  /**
   * Clients that see and change every FHIR order, not only those they placed (the EHR, an operator):
   * key names, `api-key-<n>`, or `jwt:<client_id or sub>`.
   */
  FHIR_ADMIN_CLIENTS: list(),
  FHIR_JWKS_URL: optionalUrl(['http', 'https'], 'https://idp.hospital.example/.well-known/jwks.json'),
  FHIR_JWT_ISSUER: optionalString(),
  FHIR_JWT_AUDIENCE: optionalString(),
  FHIR_EHR_BASE_URL: optionalUrl(['http', 'https'], 'https://ehr.hospital.example/fhir/R4'),
  FHIR_EHR_AUTH: z.enum(['none', 'bearer', 'smart'], { message: 'must be none, bearer or smart' }).default('none'),
  FHIR_EHR_TOKEN: secret('FHIR_EHR_TOKEN', optionalString()),
  /** Every request to the EHR (and SMART discovery/token) gives up after this long: a hung EHR must not hang a job. */
  FHIR_EHR_TIMEOUT_MS: int(30_000, 1),
  /**
   * `AUTHORITY=system,...`: the FHIR identifier system of an HL7 assigning authority (PID-3 CX-4), so a
   * report for an order that came without an EHR Patient reference can find its Patient by MRN.
   */
  FHIR_PATIENT_IDENTIFIER_SYSTEMS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const out: Record<string, string> = {};
      for (const entry of (v ?? '')
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean)) {
        const m = /^([^=\s]+)\s*=\s*([a-z][a-z0-9+.-]*:\S+)$/i.exec(entry);
        if (!m) {
          ctx.addIssue({
            code: 'custom',
            message: `entry "${entry}" is not AUTHORITY=system (system a URI, e.g. HOSP=urn:oid:1.2.3)`,
          });
          continue;
        }
        out[m[1]!] = m[2]!;
      }
      return out;
    }),
  FHIR_SMART_CLIENT_ID: optionalString(),
  FHIR_SMART_KEY_FILE: optionalString(),
  FHIR_SMART_KEY_ID: optionalString(),
  FHIR_SMART_ALG: z.enum(['RS384', 'ES384'], { message: 'must be RS384 or ES384' }).default('RS384'),
  FHIR_SMART_SCOPES: z
    .string()
    .default('system/ServiceRequest.read system/Patient.read system/DiagnosticReport.write system/Observation.write'),
  FHIR_SUBSCRIPTION_SECRET: secret('FHIR_SUBSCRIPTION_SECRET', optionalString()),
  /**
   * Clients whose bearer token the Subscription rest-hook accepts (key names, `api-key-<n>`,
   * `jwt:<client_id or sub>`; `*` for any valid client). Empty: the EHR-wide clients (FHIR_ADMIN_CLIENTS
   * and unnamed keys). A valid X-Signature (FHIR_SUBSCRIPTION_SECRET) is accepted either way.
   */
  FHIR_SUBSCRIPTION_CLIENTS: list(),
  FHIR_SUBSCRIPTION_AUTO_CREATE: bool(false),
  /**
   * Which ServiceRequests are ours: the Subscription's criteria and the catch-up search. Unset: active and
   * on-hold and revoked ones with a code of HEMATO_ORDER_CODES (`ServiceRequest?status=active,on-hold,revoked,entered-in-error&code=http://loinc.org|34994-4,…`).
   */
  FHIR_SUBSCRIPTION_CRITERIA: optionalString().refine((v) => v === undefined || /^ServiceRequest\?\S+$/.test(v), {
    message: 'must be a ServiceRequest search, e.g. ServiceRequest?status=active&code=http://loinc.org|34994-4',
  }),
  /** Most ServiceRequests one catch-up search reads from the EHR (newest first). */
  FHIR_CATCHUP_MAX: int(1000, 1),
  /** ServiceRequests asked for per page of a catch-up search (`_count`; some EHRs allow fewer than 100). */
  FHIR_CATCHUP_PAGE_SIZE: int(100, 1),
});

export const ordersSection = z
  .object({
    /** Where results go: back the way the order came, or to both channels. */
    RESULT_DELIVERY: z.enum(['origin', 'both'], { message: 'must be origin or both' }).default('origin'),
    IMAGE_STORE: z.enum(['local', 's3'], { message: 'must be local or s3' }).default('local'),
    IMAGE_DIR: optionalString(),
    IMAGE_MAX_BYTES: int(200 * 1024 * 1024, 1),
    /** The most a zip's entries may unpack to together: a zip bomb is refused once past it, never unpacked whole. */
    IMAGE_ZIP_MAX_UNPACKED_BYTES: int(DEFAULT_ZIP_MAX_UNPACKED_BYTES, 1),
    /**
     * Hosts image URLs may be fetched from, comma-separated; empty refuses every URL. The gateway refuses an
     * order naming another host at intake; the worker checks again when it fetches.
     */
    IMAGE_URL_ALLOWED_HOSTS: list(),
    /** The longest an image URL may take to deliver the whole image (a server may trickle bytes forever). */
    IMAGE_FETCH_TIMEOUT_MS: int(300_000, 1),
    /** Further attempts at an image URL after a transient failure (5xx but 501, 429, connection refused/reset, timeout). */
    IMAGE_FETCH_RETRIES: int(3, 0),
    /** The longest `Retry-After` an image server may ask for before another attempt; longer fails the image. */
    IMAGE_FETCH_RETRY_AFTER_MAX_MS: int(60_000, 0),
    IMAGE_WATCH_DIR: optionalString(),
    IMAGE_QUIET_PERIOD_MS: int(0),
    /** An S3-compatible server (MinIO, Ceph, ...); unset is AWS S3 in S3_REGION. */
    S3_ENDPOINT: optionalUrl(['http', 'https'], 'https://s3.eu-west-1.amazonaws.com'),
    S3_BUCKET: optionalString(),
    S3_REGION: z.string().default('us-east-1'),
    S3_ACCESS_KEY_ID: optionalString(),
    S3_SECRET_ACCESS_KEY: secret('S3_SECRET_ACCESS_KEY', optionalString()),
    /** Path-style URLs (`<endpoint>/<bucket>/<key>`); unset: on with S3_ENDPOINT (MinIO, Ceph need it), off for AWS. */
    S3_FORCE_PATH_STYLE: optionalBool(),
    /** Folder inside the bucket the images go under. */
    S3_PREFIX: z
      .string()
      .regex(/^[A-Za-z0-9!_.*'()/-]*$/, "letters, digits, / and ! _ . * ' ( ) - only")
      .default('images/')
      .transform((v) => {
        const folder = v.replace(/^\/+|\/+$/g, '');
        return folder ? `${folder}/` : '';
      }),
    POLL_DEADLINE_MS: int(30 * 60_000, 1),
    /** Longest wait between two status polls (polls start at 1 s and double up to this). */
    POLL_MAX_INTERVAL_MS: int(30_000, 100),
    RECONCILE_INTERVAL_MS: int(60_000, 1000),
    STALE_AFTER_MS: int(5 * 60_000, 1000),
    /**
     * Days after an order finished that its patient data is erased (inbound message and ACK, free-text notes,
     * the patient's identity once none of her orders is open); 0 keeps everything.
     */
    RETENTION_DAYS: int(0, 0),
    /** How often the worker looks for patient data past RETENTION_DAYS. */
    RETENTION_INTERVAL_MS: int(3600_000, 1000),
  })
  .superRefine(
    (v, ctx) => {
      if (v.IMAGE_STORE !== 's3') return;
      for (const key of ['S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const) {
        if (!v[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'is required when IMAGE_STORE=s3' });
      }
    },
    // Checked even when another variable is wrong, so one start lists every problem.
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );

export const dashboardSection = z.object({
  /** How long a dashboard sign-in lasts without activity. */
  ADMIN_SESSION_TTL_MS: int(8 * 3600_000, 60_000),
  /** How long a dashboard sign-in lasts at most, however active (then the user signs in again). */
  ADMIN_SESSION_MAX_MS: int(12 * 3600_000, 60_000),
  /** Consecutive wrong passwords that lock an account. */
  ADMIN_LOCKOUT_THRESHOLD: int(5, 1),
  /** How long a locked account stays locked. */
  ADMIN_LOCKOUT_MS: int(15 * 60_000, 1000),
  /** Session cookie `Secure` flag: `auto` sets it when the request came over TLS (or X-Forwarded-Proto https). */
  ADMIN_COOKIE_SECURE: z
    .enum(['auto', 'always', 'never'], { message: 'must be auto, always or never' })
    .default('auto'),
  /** Embedded `npm start` creates the first admin (password printed once) when there is no dashboard user. */
  ADMIN_BOOTSTRAP: bool(true),
  /** When set, `GET /metrics` asks for `Authorization: Bearer <METRICS_TOKEN>`; unset, it is open (counts only). */
  METRICS_TOKEN: secret('METRICS_TOKEN', optionalString()),
});

export const allSections = {
  core: coreSection,
  embedded: embeddedSection,
  database: databaseSection,
  redis: redisSection,
  security: securitySection,
  hemato: hematoSection,
  sandbox: sandboxSection,
  hl7: hl7Section,
  fhir: fhirSection,
  orders: ordersSection,
  dashboard: dashboardSection,
} as const;

export type SectionName = keyof typeof allSections;
export type AppConfig = { [K in SectionName]: z.output<(typeof allSections)[K]> };

/** One `PHI_PREVIOUS_KEYS` entry, `<key id>:<32 bytes base64>`, or null when it is not one. */
export function parsePreviousPhiKey(entry: string): { id: string; key: Buffer } | null {
  const at = entry.indexOf(':');
  if (at <= 0) return null;
  const id = entry.slice(0, at).trim();
  const key = Buffer.from(entry.slice(at + 1).trim(), 'base64');
  return /^[A-Za-z0-9_-]+$/.test(id) && key.length === 32 ? { id, key } : null;
}

/** One `HL7_RESULT_ROUTES` entry: whose results (MSH-5 / MSH-6 patterns, `*` = any) go where. */
export interface Hl7ResultRoute {
  application: string;
  facility: string;
  host: string;
  port: number;
  /** `mllps://` true, `mllp://` false, no scheme: HL7_RESULT_TLS decides. */
  tls?: boolean;
}

/** Parses `APP|FACILITY=[mllp://|mllps://]host:port`, or null when it is not one. */
export function parseHl7ResultRoute(entry: string): Hl7ResultRoute | null {
  const eq = entry.indexOf('=');
  if (eq <= 0) return null;
  const [application = '', facility = '*', extra] = entry
    .slice(0, eq)
    .split('|')
    .map((p) => p.trim());
  if (!application || extra !== undefined) return null;
  const m = /^(?:(mllps?):\/\/)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry.slice(eq + 1).trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return {
    application,
    facility: facility || '*',
    host: m[2]!.replace(/^\[|\]$/g, ''),
    port,
    ...(m[1] ? { tls: m[1] === 'mllps' } : {}),
  };
}
