import type { Bundle, BundleEntry, OperationOutcome } from '@medplum/fhirtypes';

/** Why an EHR's answer to our transaction is not an acknowledgement, and whether sending again may help. */
export interface TransactionProblem {
  error: string;
  /**
   * `error` without the EHR's own words (OperationOutcome texts, status lines): what may be logged, as those
   * words may name the patient.
   */
  logged: string;
  /** Retry (garbled or server-side failure; our writes are idempotent) or give up (the EHR refused something). */
  transient: boolean;
}

const MAX_TEXT = 300;

/**
 * Checks that a 2xx answer to a transaction is what FHIR says it must be: a `transaction-response`
 * Bundle with one entry per entry sent, each with a 2xx status. Anything else is a problem: a 4xx
 * entry but 409 is permanent (the EHR refused that resource: sending it again gets the same answer),
 * every other one transient. Returns null when every entry was written.
 */
export function checkTransactionResponse(sent: Bundle, status: number, body: unknown): TransactionProblem | null {
  const b = (body ?? {}) as Partial<Bundle> & { resourceType?: string };
  if (b.resourceType !== 'Bundle' || b.type !== 'transaction-response') {
    return {
      transient: true,
      error: `the EHR answered HTTP ${status} but not with a transaction-response: ${describe(body)}`,
      logged: `the EHR answered HTTP ${status} but not with a transaction-response: ${describe(body, false)}`,
    };
  }
  const sentEntries = sent.entry ?? [];
  const entries = b.entry ?? [];
  if (entries.length !== sentEntries.length) {
    const error = `the EHR's transaction-response has ${entries.length} entries for the ${sentEntries.length} sent`;
    return { transient: true, error, logged: error };
  }
  const refused: string[] = [];
  const refusedCodes: string[] = [];
  let permanent = false;
  entries.forEach((e, i) => {
    const code = Number(/^\s*(\d{3})/.exec(e.response?.status ?? '')?.[1] ?? NaN);
    if (code >= 200 && code < 300) return;
    // 409: the entry met a concurrent write (our writes are conditional on identifiers, so another try succeeds).
    if (code >= 400 && code < 500 && code !== 409) permanent = true;
    const what = sentEntries[i]?.resource?.resourceType ?? 'resource';
    const why = outcomeText(e.response?.outcome as OperationOutcome | undefined);
    refused.push(`entry ${i + 1} (${what}): ${e.response?.status?.trim() || 'no status'}${why ? ` ${why}` : ''}`);
    refusedCodes.push(`entry ${i + 1} (${what}): ${Number.isNaN(code) ? 'no status' : code}`);
  });
  if (refused.length === 0) return null;
  return {
    transient: !permanent,
    error: truncate(`the EHR refused ${refused.join('; ')}`, 2 * MAX_TEXT),
    logged: truncate(`the EHR refused ${refusedCodes.join('; ')}`, 2 * MAX_TEXT),
  };
}

/** What we keep of a transaction-response on the delivery row: each entry's status, location and outcome. */
export function summariseTransactionResponse(b: Bundle): unknown {
  return {
    resourceType: b.resourceType,
    type: b.type,
    entry: (b.entry ?? []).map((e: BundleEntry) => ({ response: e.response })),
  };
}

/** What the body is; with `words`, an OperationOutcome's issues too. */
function describe(body: unknown, words = true): string {
  if (body === null || body === undefined || (typeof body === 'object' && Object.keys(body).length === 0)) {
    return 'an empty body';
  }
  if (typeof body !== 'object' || Array.isArray(body)) return 'JSON that is not a FHIR resource';
  const r = body as { resourceType?: unknown; type?: unknown };
  if (r.resourceType === 'OperationOutcome') {
    const text = words ? outcomeText(body as OperationOutcome) : '';
    return `an OperationOutcome${text ? ` (${text})` : ''}`;
  }
  if (r.resourceType === 'Bundle') return `a Bundle of type ${typeof r.type === 'string' ? r.type : '(none)'}`;
  if (typeof r.resourceType === 'string') return `a ${r.resourceType.slice(0, 64)}`;
  return 'JSON that is not a FHIR resource';
}

/** The issues of an OperationOutcome as one line: `code: diagnostics` each (at most 300 characters). */
export function outcomeText(oc: OperationOutcome | undefined): string {
  const issues = (oc?.issue ?? []).map((i) =>
    [i.code, i.diagnostics ?? i.details?.text].filter((x) => typeof x === 'string' && x).join(': '),
  );
  return truncate(issues.filter(Boolean).join('; '), MAX_TEXT);
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
