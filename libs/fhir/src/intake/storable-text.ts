import { FhirOperationError } from '../outcome/operation-outcome';

/**
 * What PostgreSQL cannot keep in text or jsonb: U+0000, and a UTF-16 surrogate without its pair (JSON
 * can carry both as `\u` escapes). FHIR strings do not allow either (no control characters; Unicode).
 */
// eslint-disable-next-line no-control-regex -- U+0000 is what it looks for
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Most bytes of an identifier kept as an order's key (`system|value`): btree index entries hold 2704 at most. */
export const MAX_IDENTIFIER_BYTES = 1024;

/** The FHIRPath of the first string (or property name) in `value` that cannot be stored; undefined when none. */
export function unstorableTextAt(value: unknown, path: string): string | undefined {
  // Iterative: a deeply nested body must not overflow the stack.
  const stack: Array<[unknown, string]> = [[value, path]];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (UNSTORABLE.test(v)) return at;
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${at}[${i}]`]);
    } else if (v && typeof v === 'object') {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, child] = entries[i]!;
        if (UNSTORABLE.test(k)) return at;
        stack.push([child, `${at}.${k}`]);
      }
    }
  }
  return undefined;
}

/** 400 `invalid` naming the element when `value` holds text that cannot be stored. */
export function assertStorableText(value: unknown, path: string): void {
  const at = unstorableTextAt(value, path);
  if (at !== undefined) {
    throw FhirOperationError.invalid(
      'The text holds a character FHIR strings do not allow (U+0000 or an unpaired UTF-16 surrogate)',
      at,
      'invalid',
    );
  }
}
