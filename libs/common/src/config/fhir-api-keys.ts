import { z } from 'zod';

/** One FHIR API key and the client it belongs to. */
export interface FhirApiKey {
  /** The client: the name given as `name:key`, or `api-key-<n>` (its 1-based place) for a bare key. */
  client: string;
  key: string;
  /** False for a bare key: an unnamed key sees every client's orders, as every key did before names. */
  named: boolean;
}

/** Client names the gateway gives itself or to unnamed keys; a key named so would pass for them. */
export const RESERVED_FHIR_CLIENT = /^(api-key-\d+|ehr-subscription|signature)$/;
const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * `name:key` or a bare `key` (for one entry of FHIR_API_KEYS). Errors never quote the entry: it is a
 * secret, and for a key that itself holds a `:` the part before it is secret too.
 */
export function parseFhirApiKey(entry: string, index: number): FhirApiKey | { error: string } {
  const colon = entry.indexOf(':');
  if (colon < 0) return { client: `api-key-${index + 1}`, key: entry, named: false };
  const client = entry.slice(0, colon).trim();
  const key = entry.slice(colon + 1).trim();
  const where = `entry ${index + 1}`;
  if (!CLIENT_NAME.test(client)) {
    return {
      error: `${where}: the client name before ':' must be 1-64 letters, digits, '.', '_' or '-' (a key that itself contains ':' must be given a name, name:key)`,
    };
  }
  if (RESERVED_FHIR_CLIENT.test(client))
    return { error: `${where}: the client name is reserved (api-key-<n>, ehr-subscription, signature)` };
  if (!key) return { error: `${where}: no key after the client name` };
  return { client, key, named: true };
}

/** FHIR_API_KEYS: comma-separated `name:key` pairs or bare keys; names and keys each used once. */
export const fhirApiKeys = () =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const entries = (v ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const out: FhirApiKey[] = [];
      for (const [i, entry] of entries.entries()) {
        const parsed = parseFhirApiKey(entry, i);
        if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
        else out.push(parsed);
      }
      const names = out.map((k) => k.client);
      if (new Set(names).size !== names.length)
        ctx.addIssue({ code: 'custom', message: 'a client name is used twice' });
      const keys = out.map((k) => k.key);
      if (new Set(keys).size !== keys.length) ctx.addIssue({ code: 'custom', message: 'a key is listed twice' });
      return out;
    });
