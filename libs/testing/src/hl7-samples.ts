/** A synthetic patient with every kind of PHI a real PID carries (for the no-PHI-out tests and the demo). */
export interface SamplePatient {
  mrn: string;
  authority: string;
  family: string;
  given: string;
  birthDate: string; // YYYYMMDD
  street: string;
  city: string;
  phone: string;
  nationalId: string;
}

export const SAMPLE_PATIENT: SamplePatient = {
  mrn: 'MRN77001234',
  authority: 'GENHOSP',
  family: 'Okonkwo-Lindqvist',
  given: 'Beatrix',
  birthDate: '19820417',
  street: '27 Juniper Crescent',
  city: 'Port Ellery',
  phone: '555-0142-7788',
  nationalId: 'NI-448-21-9037',
};

export interface SampleOrderOptions {
  controlId: string;
  placer: string;
  patient?: SamplePatient;
  /** Images carried inline (OBX ED, base64). */
  images?: Array<{ data: Buffer; subtype: 'PNG' | 'JPEG' | 'ZIP' }>;
  /** Images by reference (OBX RP). */
  imageUrls?: string[];
  /** LOINC code of the test (default 34994-4, mapped to pbs_v1). */
  code?: string;
  control?: 'NW' | 'CA' | 'DC' | 'HD' | 'RL';
  /** OBR-7 observation (collection) date/time as an HL7 TS (default: now, UTC digits without an offset). */
  collectedAt?: string;
}

/** An ORM^O01 (v2.5.1) for a peripheral blood smear, as an interface engine would send it. */
export function sampleOrm(o: SampleOrderOptions): string {
  const p = o.patient ?? SAMPLE_PATIENT;
  const now = new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const segs = [
    `MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|${now}||ORM^O01^ORM_O01|${o.controlId}|P|2.5.1|||||UNICODE UTF-8`,
    `PID|1||${p.mrn}^^^${p.authority}^MR~${p.nationalId}^^^NATID^NI||${p.family}^${p.given}||${p.birthDate}|F|||${p.street}^^${p.city}^^90210||${p.phone}`,
    `PV1|1|O|HEM^^^GENHOSP`,
    `ORC|${o.control ?? 'NW'}|${o.placer}^LIS||||||||||1234^WELBY^MARCUS^^^DR^^^NPI`,
    `OBR|1|${o.placer}^LIS||${o.code ?? '34994-4'}^Smear morphology panel - Blood^LN|||${o.collectedAt ?? now}||||||||BLD|1234^WELBY^MARCUS^^^DR^^^NPI`,
  ];
  let n = 0;
  for (const img of o.images ?? []) {
    n++;
    segs.push(`OBX|${n}|ED|IMG^Smear image^L|${n}|^IM^${img.subtype}^Base64^${img.data.toString('base64')}||||||F`);
  }
  for (const url of o.imageUrls ?? []) {
    n++;
    segs.push(`OBX|${n}|RP|IMG^Smear image^L|${n}|${url.replace(/&/g, '\\T\\')}^^IM^PNG||||||F`);
  }
  return segs.join('\r');
}

/** Every PHI value of a sample patient, in the forms it may appear (for leak searches). */
export function phiValues(p: SamplePatient = SAMPLE_PATIENT): string[] {
  const iso = `${p.birthDate.slice(0, 4)}-${p.birthDate.slice(4, 6)}-${p.birthDate.slice(6, 8)}`;
  return [
    p.mrn,
    p.family,
    p.given,
    p.birthDate,
    iso,
    p.street,
    p.city,
    p.phone,
    p.phone.replace(/\D/g, ''),
    p.nationalId,
  ];
}
