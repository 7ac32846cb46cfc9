/** One request as the sandbox received it (secrets removed). */
export interface LoggedRequest {
  seq: number;
  at: string;
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** Parsed JSON body; for a file upload `{ bytes, file_id }`; undefined when there was none. */
  body?: unknown;
  /** Tags of the study the request concerns (sent with POST /pbs, or stored with the study). */
  tags?: Record<string, string>;
  pbs_study_id?: string;
  /** `session:<user id>` or `key:<organisation>/<sub>`, when the token was valid. */
  principal?: string;
  status?: number;
  duration_ms?: number;
  /** Fault injected into this request, if any. */
  fault?: string;
}

/** One callback the sandbox sent, dropped or failed to send. */
export interface LoggedCallback {
  seq: number;
  at: string;
  pbs_study_id: string;
  url: string;
  body: Record<string, unknown>;
  outcome: 'delivered' | 'dropped' | 'failed' | 'pending';
  attempts: number;
  http_status?: number;
  error?: string;
  delay_ms: number;
}

const SECRET_HEADER =
  /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key)$|secret|token|password|signature/i;

/** Headers without credentials: Authorization and anything named like a secret never enter the log. */
export function safeHeaders(raw: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined || SECRET_HEADER.test(k)) continue;
    out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** Keeps the last `max` entries in memory (a ring, oldest dropped first). */
export class Ring<T extends { seq: number }> {
  private items: T[] = [];
  private next = 1;
  constructor(private readonly max: number) {}

  add(item: Omit<T, 'seq'>): T {
    const full = { ...item, seq: this.next++ } as T;
    this.items.push(full);
    if (this.items.length > this.max) this.items.splice(0, this.items.length - this.max);
    return full;
  }

  list(): T[] {
    return this.items;
  }

  clear(): void {
    this.items = [];
  }
}
