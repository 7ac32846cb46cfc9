import { DomainError, DomainErrorCode } from '@hemato/common';
import type { PatientIdentity } from './patient-identity';

/** One outbound request toward Hemato.AI, as the client is about to send it. */
export interface OutboundRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** JSON body (not file bytes: images carry no text PHI we can match, and are not read here). */
  jsonBody?: unknown;
  tags?: Record<string, string>;
}

/** Lower case, every run of non-alphanumerics one space: `DOE^JOHN` and `Doe, John` read alike. */
function normalise(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

/** The strings that must never appear in a request to Hemato.AI for this patient. */
export function forbiddenValues(identity: PatientIdentity): string[] {
  const out = new Set<string>();
  const add = (v: string | undefined, min = 2) => {
    const n = v ? normalise(v) : '';
    if (n.replace(/ /g, '').length >= min) out.add(n);
  };
  add(identity.primary.value);
  for (const id of identity.identifiers) add(id.value);
  add(identity.name?.family);
  for (const g of identity.name?.given ?? []) add(g);
  add(identity.name?.text);
  if (identity.birthDate) {
    add(identity.birthDate, 6);
    add(identity.birthDate.replace(/\D/g, ''), 6);
  }
  for (const line of identity.address ?? []) add(line, 4);
  for (const p of identity.phone ?? []) {
    add(p, 6);
    add(p.replace(/\D/g, ''), 6);
  }
  return [...out];
}

/**
 * The one guard on the path to the Hemato.AI client: refuses a request whose URL, headers, tags or
 * JSON body contains any of the patient's identifiers, names, birth date, address or phone.
 * Matching is by whole words, ignoring case and punctuation, so `DOE^JOHN` and `Doe, John` are both
 * caught while a random id that merely contains an MRN's digits is not.
 */
export function assertNoPhi(request: OutboundRequest, identity: PatientIdentity): void {
  const forbidden = forbiddenValues(identity);
  if (forbidden.length === 0) return;
  const parts: Array<[string, string]> = [
    ['url', decodeURIComponent(request.url)],
    ['headers', JSON.stringify(Object.entries(request.headers).filter(([k]) => k.toLowerCase() !== 'authorization'))],
  ];
  if (request.tags) parts.push(['tags', JSON.stringify(request.tags)]);
  if (request.jsonBody !== undefined) parts.push(['body', JSON.stringify(request.jsonBody)]);
  for (const [where, text] of parts) {
    const hay = ` ${normalise(text)} `;
    if (forbidden.some((f) => hay.includes(` ${f} `))) {
      // Never say which value matched: that would put it in a log.
      throw new DomainError(DomainErrorCode.PhiLeak, `Refused to send patient data to Hemato.AI (found in ${where})`);
    }
  }
}
