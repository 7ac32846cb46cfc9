import { searchParamsOf } from '../capability/capability-statement';
import { FhirOperationError, operationOutcome } from '../outcome/operation-outcome';

/** Parameters of every request, not search criteria: never "unknown", never in the self link. */
const REQUEST_PARAMS = new Set(['_format', '_pretty']);

/** A search as we apply it. */
export interface ParsedSearch {
  /** Per parameter, its occurrences (AND), each a list of values (OR, the comma-separated ones). */
  criteria: Map<string, string[][]>;
  /** The parameters applied, in request order, as sent (for the searchset's `self` link). */
  applied: Array<[string, string]>;
  /** Parameters we neither know nor apply (ignored unless `handling=strict`). */
  ignored: string[];
}

/** The `handling` preference of a `Prefer` header: `strict` or `lenient` (the default). */
export function preferredHandling(header: string | string[] | undefined): 'strict' | 'lenient' {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  for (const part of text.split(/[,;]/)) {
    const [k, v] = part.split('=').map((x) => x.trim().replace(/^"|"$/g, ''));
    if (k?.toLowerCase() === 'handling' && v?.toLowerCase() === 'strict') return 'strict';
  }
  return 'lenient';
}

/**
 * Reads a search of `type` from the query: the parameters the CapabilityStatement lists for it (no modifiers,
 * no chains) and the result parameters in `resultParams`. Anything else is unknown to us: ignored, and left
 * out of `applied` (so the self link shows what was searched), or, under `Prefer: handling=strict`, a 400
 * naming it. Empty values are no criteria (FHIR ignores them).
 */
export function parseSearch(
  type: string,
  query: Record<string, unknown>,
  handling: 'strict' | 'lenient',
  resultParams: string[] = [],
): ParsedSearch {
  const known = new Set([...searchParamsOf(type), ...resultParams]);
  const criteria = new Map<string, string[][]>();
  const applied: Array<[string, string]> = [];
  const ignored: string[] = [];
  for (const [name, raw] of Object.entries(query)) {
    if (REQUEST_PARAMS.has(name)) continue;
    if (!known.has(name)) {
      ignored.push(name);
      continue;
    }
    for (const v of Array.isArray(raw) ? raw : [raw]) {
      if (typeof v !== 'string' || v === '') continue;
      const values = v.split(',').filter((x) => x !== '');
      if (values.length === 0) continue;
      criteria.set(name, [...(criteria.get(name) ?? []), values]);
      applied.push([name, v]);
    }
  }
  if (handling === 'strict' && ignored.length > 0) {
    const names = ignored.map((n) => n.slice(0, 64)).join(', ');
    throw new FhirOperationError(
      400,
      operationOutcome(
        'error',
        'not-supported',
        `Unknown or unsupported search parameter for ${type}: ${names} (Prefer: handling=strict; supported: ${[...searchParamsOf(type)].join(', ')})`,
      ),
    );
  }
  return { criteria, applied, ignored };
}
