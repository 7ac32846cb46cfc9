/** HL7 v2 order messages for tests (synthetic patients only). */

export interface OrmOptions {
  controlId: string;
  type?: 'ORM' | 'OML';
  version?: string;
  sendingApp?: string;
  sendingFacility?: string;
  /** MSH-15 / MSH-16 (enhanced mode). */
  acceptAck?: string;
  appAck?: string;
  charset?: string;
  patientId?: string;
  patientName?: string;
  groups?: Array<{
    control?: 'NW' | 'CA' | 'DC' | 'XO';
    placer: string;
    code?: string;
    system?: string;
    extra?: string[];
  }>;
  /** Segments between MSH and PID (e.g. to break things). */
  omitPid?: boolean;
}

export function orderMessage(o: OrmOptions): string {
  const type = o.type ?? 'ORM';
  const event = type === 'ORM' ? 'O01' : 'O21';
  // v2.5.1 unless asked: the ERR detail the intake tests read (ERR-2 location, ERR-3 code, ERR-8 text) is v2.5's;
  // a v2.3 / v2.4 ACK has ERR-1 alone (test/hl7/err-version.test.ts).
  const version = o.version ?? '2.5.1';
  const msh = [
    'MSH',
    '^~\\&',
    o.sendingApp ?? 'LIS',
    o.sendingFacility ?? 'GENHOSP',
    'HEMATO-BRIDGE',
    'HEMATO',
    '20260101120000',
    '',
    `${type}^${event}${version >= '2.4' ? `^${type}_${event}` : ''}`,
    o.controlId,
    'P',
    version,
    '',
    '',
    o.acceptAck ?? '',
    o.appAck ?? '',
    '',
    o.charset ?? '',
  ].join('|');
  const segs = [msh.replace(/\|+$/, '')];
  if (!o.omitPid) {
    segs.push(
      `PID|1||${o.patientId ?? 'MRN0001'}^^^GENHOSP^MR~99887766^^^NATID^NI||${o.patientName ?? 'TESTPATIENT^ALICE^Q'}||19700102|F|||1 TEST STREET^^TESTTOWN`,
    );
    segs.push('PV1|1|O|HEM^^^GENHOSP');
  }
  const groups = o.groups ?? [{ placer: `PL-${o.controlId}` }];
  groups.forEach((g, i) => {
    const control = g.control ?? 'NW';
    segs.push(`ORC|${control}|${g.placer}||||||||||1234^WELBY^MARCUS^^^DR^^^NPI`);
    if (control === 'NW') {
      segs.push(
        `OBR|${i + 1}|${g.placer}||${g.code ?? '34994-4'}^Peripheral blood smear^${g.system ?? 'LN'}|||20260101113000|||||||||1234^WELBY^MARCUS`,
      );
      segs.push(...(g.extra ?? []));
    }
  });
  return segs.join('\r');
}

/** A 1x1 PNG. */
export const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);
