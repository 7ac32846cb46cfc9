import type { AppConfig } from '@hemato/common';

/** Where one result goes: host, port, and whether over TLS. */
export interface Hl7ResultDestination {
  host: string;
  port: number;
  tls: boolean;
  /** `route <n>` (1-based, of HL7_RESULT_ROUTES) or `default` (HL7_RESULT_HOST): says which rule chose it. */
  via: string;
}

/**
 * The destination of a result addressed to `receiver` (its MSH-5 / MSH-6): the first HL7_RESULT_ROUTES
 * entry matching it (case-insensitive, `*` matches anything), else HL7_RESULT_HOST:HL7_RESULT_PORT, else
 * null (nowhere to send it). One bridge can so serve several sites, each with its own interface engine.
 */
export function hl7ResultDestination(
  c: Pick<AppConfig['hl7'], 'HL7_RESULT_ROUTES' | 'HL7_RESULT_HOST' | 'HL7_RESULT_PORT' | 'HL7_RESULT_TLS'>,
  receiver: { application: string; facility: string },
): Hl7ResultDestination | null {
  const matches = (pattern: string, value: string) => pattern === '*' || pattern.toUpperCase() === value.toUpperCase();
  for (const [i, route] of c.HL7_RESULT_ROUTES.entries()) {
    if (!matches(route.application, receiver.application) || !matches(route.facility, receiver.facility)) continue;
    return { host: route.host, port: route.port, tls: route.tls ?? c.HL7_RESULT_TLS, via: `route ${i + 1}` };
  }
  if (!c.HL7_RESULT_HOST || !c.HL7_RESULT_PORT) return null;
  return { host: c.HL7_RESULT_HOST, port: c.HL7_RESULT_PORT, tls: c.HL7_RESULT_TLS, via: 'default' };
}
