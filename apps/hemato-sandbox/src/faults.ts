import { z } from 'zod';

const rate = z.number().min(0).max(1);

/** Faults the sandbox injects on demand (SANDBOX_FAULTS, the config file, or POST /_sandbox/faults). */
export const faultSchema = z
  .object({
    /** Added to every API answer. */
    latency_ms: z.number().int().min(0).max(120_000).default(0),
    /** Share (0..1) of API requests answered with `error_status`. */
    error_rate: rate.default(0),
    error_status: z.number().int().min(500).max(599).default(503),
    /** The next N API requests fail with `error_status` (then the count runs down to 0). */
    fail_next: z.number().int().min(0).default(0),
    /** Share of API requests answered 429 with Retry-After. */
    rate_limit_rate: rate.default(0),
    /** The next N API requests get a 429. */
    rate_limit_next: z.number().int().min(0).default(0),
    /**
     * The next N API requests are carried out, then the connection is closed without an answer: the
     * client cannot tell whether the service acted (a lost answer, a timeout after the work was done).
     */
    drop_answer_next: z.number().int().min(0).default(0),
    retry_after_s: z.number().int().min(0).max(3600).default(1),
    /** Share of callbacks never sent. */
    callback_drop_rate: rate.default(0),
    /** Added before each callback is sent. */
    callback_delay_ms: z.number().int().min(0).max(600_000).default(0),
    /** Share of diagnostic runs that end `failed`. */
    processing_fail_rate: rate.default(0),
    processing_fail_message: z
      .string()
      .default('The sample could not be analysed (sandbox fault injection). Please resubmit the study.'),
    /**
     * Path prefixes request faults (latency, 5xx, 429, dropped answers) apply to; `*` stands for one path
     * segment (such as the study id of `/pbs/{id}/tasks`). Empty: every API path.
     */
    paths: z.array(z.string()).default([]),
    /** HTTP methods request faults apply to (such as `POST`, to slow `POST /pbs` but not `GET /pbs`). Empty: every method. */
    methods: z.array(z.string().toUpperCase()).default([]),
  })
  .strict();

export type FaultConfig = z.output<typeof faultSchema>;

/** What a request should suffer, decided once at its start. */
export type RequestFault =
  { kind: 'error'; status: number } | { kind: 'rate_limit'; retryAfterS: number } | { kind: 'drop_answer' } | undefined;

/** A `paths` entry as a prefix match, `*` matching one path segment. */
function pathPrefix(entry: string): RegExp {
  const source = entry
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]+');
  return new RegExp(`^${source}`);
}

/**
 * Fault state. Shares are applied deterministically with an accumulator (a share of 0.25 fails exactly
 * every fourth request), so a test that sets a share gets exactly that share, never a lucky run.
 */
export class Faults {
  config: FaultConfig = faultSchema.parse({});
  private acc = { error: 0, rateLimit: 0, drop: 0, fail: 0 };
  readonly counters = { errors: 0, rate_limited: 0, answers_dropped: 0, callbacks_dropped: 0, runs_failed: 0 };

  /** Replaces the configuration (unset fields take their defaults: no fault). */
  set(input: unknown): FaultConfig {
    this.config = faultSchema.parse(input ?? {});
    this.acc = { error: 0, rateLimit: 0, drop: 0, fail: 0 };
    return this.config;
  }

  clear(): void {
    this.set({});
    for (const k of Object.keys(this.counters) as Array<keyof Faults['counters']>) this.counters[k] = 0;
  }

  applies(path: string, method?: string): boolean {
    const { paths, methods } = this.config;
    if (methods.length > 0 && (method === undefined || !methods.includes(method.toUpperCase()))) return false;
    return paths.length === 0 || paths.some((p) => pathPrefix(p).test(path));
  }

  private share(key: keyof Faults['acc'], r: number): boolean {
    if (r <= 0) return false;
    this.acc[key] += r;
    if (this.acc[key] >= 1 - 1e-9) {
      this.acc[key] -= 1;
      return true;
    }
    return false;
  }

  /** Decides the fault for one API request (call once per request). */
  forRequest(path: string, method?: string): RequestFault {
    if (!this.applies(path, method)) return undefined;
    const c = this.config;
    if (c.rate_limit_next > 0) {
      c.rate_limit_next--;
      this.counters.rate_limited++;
      return { kind: 'rate_limit', retryAfterS: c.retry_after_s };
    }
    if (c.drop_answer_next > 0) {
      c.drop_answer_next--;
      this.counters.answers_dropped++;
      return { kind: 'drop_answer' };
    }
    if (c.fail_next > 0) {
      c.fail_next--;
      this.counters.errors++;
      return { kind: 'error', status: c.error_status };
    }
    if (this.share('rateLimit', c.rate_limit_rate)) {
      this.counters.rate_limited++;
      return { kind: 'rate_limit', retryAfterS: c.retry_after_s };
    }
    if (this.share('error', c.error_rate)) {
      this.counters.errors++;
      return { kind: 'error', status: c.error_status };
    }
    return undefined;
  }

  latencyFor(path: string, method?: string): number {
    return this.applies(path, method) ? this.config.latency_ms : 0;
  }

  dropCallback(): boolean {
    const drop = this.share('drop', this.config.callback_drop_rate);
    if (drop) this.counters.callbacks_dropped++;
    return drop;
  }

  /** The user message when this run is to fail, else undefined. */
  failRun(): string | undefined {
    if (!this.share('fail', this.config.processing_fail_rate)) return undefined;
    this.counters.runs_failed++;
    return this.config.processing_fail_message;
  }
}
