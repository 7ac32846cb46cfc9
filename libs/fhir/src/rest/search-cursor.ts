import { createHmac, timingSafeEqual } from 'node:crypto';
import { FhirOperationError } from '../outcome/operation-outcome';

/**
 * Where a searchset page starts: after (`next`) or before (`previous`) the row with this sort key. Keyset
 * rather than offset, so rows arriving before the position a client reached shift nothing.
 */
export interface SearchCursor {
  direction: 'after' | 'before';
  /** The row's created_at as PostgreSQL prints it to the microsecond (a JS Date would drop those). */
  at: string;
  id: string;
}

/** What a cursor is valid for: the search that issued it (type, its criteria, the client). */
export interface SearchCursorScope {
  type: string;
  client: string;
  /** The applied criteria, paging parameters excluded. */
  criteria: Array<[string, string]>;
}

const AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The criteria in one order whatever order the client sent them in. */
function scopeText(s: SearchCursorScope): string {
  const criteria = [...s.criteria].sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : x > y ? 1 : 0) : a < b ? -1 : 1));
  return JSON.stringify([s.type, s.client, criteria]);
}

function mac(secret: string, scope: SearchCursorScope, payload: string): Buffer {
  // A label of its own, so no other signature made with the same secret is ever a valid cursor.
  return createHmac('sha256', secret)
    .update(`fhir-search-cursor\n${scopeText(scope)}\n${payload}`)
    .digest();
}

/** An opaque `_cursor` value: the position, base64url, and an HMAC binding it to its search. */
export function encodeSearchCursor(secret: string, scope: SearchCursorScope, c: SearchCursor): string {
  const payload = Buffer.from(`${c.direction === 'after' ? 'a' : 'b'}${c.at}_${c.id}`).toString('base64url');
  return `${payload}.${mac(secret, scope, payload).toString('base64url')}`;
}

/**
 * The position a `_cursor` names. One we did not issue for this very search (edited, made up, another
 * search's or another client's) answers 400: it would otherwise page from somewhere the client never was.
 */
export function decodeSearchCursor(secret: string, scope: SearchCursorScope, value: string): SearchCursor {
  const refuse = () =>
    FhirOperationError.invalid(
      '_cursor is not one this server issued for this search: follow the next/previous links as given',
      undefined,
      'value',
    );
  const [payload, sig, extra] = value.split('.');
  if (!payload || !sig || extra !== undefined || !/^[\w-]+$/.test(payload) || !/^[\w-]+$/.test(sig)) throw refuse();
  const expected = mac(secret, scope, payload);
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw refuse();
  const text = Buffer.from(payload, 'base64url').toString();
  const m = /^([ab])(.+)_(.+)$/.exec(text);
  if (!m || !AT.test(m[2]!) || !UUID.test(m[3]!)) throw refuse();
  return { direction: m[1] === 'a' ? 'after' : 'before', at: m[2]!, id: m[3]! };
}
