import type { LoggerService } from '@nestjs/common';
import pino, { type Logger } from 'pino';

/**
 * Keys whose values are patient data or message bodies. Logs carry order, job and control ids only;
 * these keys are redacted wherever they appear (top level and up to three levels down), as a net under
 * the rule "never log a body or an identifier".
 */
export const PHI_KEYS = [
  'patient',
  'patientName',
  'name',
  'given',
  'family',
  'mrn',
  'identifier',
  'identifiers',
  'birthDate',
  'dob',
  'dateOfBirth',
  'address',
  'phone',
  'telecom',
  'ssn',
  'body',
  'raw',
  'rawMessage',
  'message_body',
  'password',
  'pass_hash',
  'token',
  'authorization',
  'Authorization',
  'cookie',
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const key of PHI_KEYS) {
    paths.push(key, `*.${key}`, `*.*.${key}`, `*.*.*.${key}`);
  }
  return paths;
}

/**
 * Properties of a database error that carry the values a statement was sent (TypeORM's `parameters`,
 * PostgreSQL's `where`, e.g. `JSON data, line 1: {...}`, and `detail`, e.g. `Key (x)=(value) already exists`).
 * An error is logged with its type, message, code, SQL and stack; never with these.
 */
const ERROR_VALUE_KEYS = new Set(['parameters', 'where', 'detail']);

function scrubError(value: unknown, depth = 0): unknown {
  if (!value || typeof value !== 'object' || depth > 4) return value;
  if (Array.isArray(value)) return value.map((v) => scrubError(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (ERROR_VALUE_KEYS.has(k)) continue;
    out[k] = scrubError(v, depth + 1);
  }
  return out;
}

/** pino's error serializer, without the statement's values a database error carries (see ERROR_VALUE_KEYS). */
export function serializeError(err: unknown): unknown {
  return err instanceof Error ? scrubError(pino.stdSerializers.err(err)) : err;
}

let root: Logger | undefined;

/** The process-wide JSON logger (pino). `LOG_LEVEL` sets its level. */
export function rootLogger(): Logger {
  root ??= pino({
    level: process.env.LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths(), censor: '[redacted]' },
    serializers: { err: serializeError, error: serializeError },
    formatters: { level: (label) => ({ level: label }) },
  });
  return root;
}

/** A child logger for one component: every line carries `component`. */
export function createLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ component, ...bindings });
}

/** Nest's logger interface on top of pino, so framework lines are JSON like ours. */
export class PinoNestLogger implements LoggerService {
  private readonly logger = createLogger('nest');
  log(message: unknown, context?: string) {
    // Nest's start-up chatter (module and route listings) is debug detail, not news.
    const chatter = context === 'InstanceLoader' || context === 'RouterExplorer' || context === 'RoutesResolver';
    this.logger[chatter ? 'debug' : 'info']({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string) {
    this.logger.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string) {
    this.logger.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string) {
    this.logger.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string) {
    this.logger.trace({ context }, String(message));
  }
}

export type { Logger };
