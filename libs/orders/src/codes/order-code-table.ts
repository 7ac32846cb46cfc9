import { DomainError, DomainErrorCode } from '@hemato/common';

/** FHIR code system URIs and the HL7 v2 coding-system names (table 0396) they correspond to. */
const SYSTEM_ALIASES: Record<string, string> = {
  'http://loinc.org': 'LN',
  loinc: 'LN',
  'http://snomed.info/sct': 'SCT',
  'http://terminology.hl7.org/CodeSystem/v2-0396': 'HL7',
};

/** HL7 v2 name for a coding system, whether given as a v2 name or a FHIR URI. */
export function normaliseSystem(system: string | null | undefined): string {
  const s = (system ?? '').trim();
  return SYSTEM_ALIASES[s] ?? SYSTEM_ALIASES[s.toLowerCase()] ?? s.toUpperCase();
}

/**
 * Which Hemato.AI tasks an order code asks for. Configured by `HEMATO_ORDER_CODES`:
 * `SYSTEM|CODE=task[+task],...`, e.g. `LN|34994-4=pbs_v1,LN|57021-8=pbs_v1`.
 */
export class OrderCodeTable {
  private readonly map = new Map<string, string[]>();

  constructor(spec: string) {
    for (const entry of spec
      .split(',')
      .map((e) => e.trim())
      .filter(Boolean)) {
      const m = /^([^|=]+)\|([^=]+)=(.+)$/.exec(entry);
      if (!m)
        throw new DomainError(DomainErrorCode.Invalid, `HEMATO_ORDER_CODES entry "${entry}" is not SYSTEM|CODE=task`);
      const tasks = m[3]!
        .split('+')
        .map((t) => t.trim())
        .filter(Boolean);
      this.map.set(`${normaliseSystem(m[1])}|${m[2]!.trim()}`, tasks);
    }
  }

  /** Tasks for a code, or null when the code is not mapped. A code without a system matches any system. */
  tasksFor(system: string | null | undefined, code: string): string[] | null {
    const c = code.trim();
    if (system) return this.map.get(`${normaliseSystem(system)}|${c}`) ?? null;
    for (const [key, tasks] of this.map) if (key.endsWith(`|${c}`)) return tasks;
    return null;
  }

  entries(): Array<{ system: string; code: string; tasks: string[] }> {
    return [...this.map].map(([k, tasks]) => {
      const [system, code] = k.split('|') as [string, string];
      return { system, code, tasks };
    });
  }
}
