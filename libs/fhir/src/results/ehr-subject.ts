import type { PatientIdentity } from '@hemato/privacy';
import type { Bundle, Patient } from '@medplum/fhirtypes';

/** The report cannot be addressed to a Patient of the EHR: it is not sent (sending it again would not help). */
export class EhrSubjectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EhrSubjectError';
  }
}

/** The one EHR call finding a Patient needs (EhrClient has it). */
export interface PatientSearch {
  search(resourceType: 'Patient', searchParams: Record<string, string>): Promise<Bundle<Patient>>;
}

/** A FHIR identifier system is a URI (`urn:oid:…`, `http://…`); an HL7 namespace id like `HOSP` is not. */
const isUri = (s: string | undefined): s is string => !!s && /^[a-z][a-z0-9+.-]*:\S+$/i.test(s);

/**
 * The Patient in the EHR a report is about, as a literal reference. An order from the EHR carries its
 * Patient reference. Any other (HL7, the API) is looked up by its identifiers: MRN first, each whose
 * authority is a FHIR system or is mapped to one (`systems`, from FHIR_PATIENT_IDENTIFIER_SYSTEMS),
 * searched `Patient?identifier=system|value`. Exactly one match is the subject; none, or more than one,
 * throws EhrSubjectError: a report filed under a guessed or placeholder patient is worse than none.
 * Error texts name systems and authorities, never identifier values.
 */
export async function resolveEhrSubject(
  ehr: PatientSearch,
  identity: PatientIdentity | null,
  systems: Readonly<Record<string, string>> = {},
): Promise<{ reference: string }> {
  if (!identity) {
    throw new EhrSubjectError(
      'the order has no patient identity: a report is never sent to the EHR without its Patient',
    );
  }
  if (identity.fhirPatientRef) return { reference: identity.fhirPatientRef };

  const ids = [...identity.identifiers].sort((a, b) => Number(b.type === 'MR') - Number(a.type === 'MR'));
  ids.push({ authority: identity.primary.authority, value: identity.primary.value });
  const candidates: Array<{ system: string; value: string }> = [];
  const unmapped = new Set<string>();
  for (const id of ids) {
    const system = isUri(id.authority) ? id.authority : id.authority ? systems[id.authority] : undefined;
    if (!system) {
      unmapped.add(id.authority || '(no assigning authority)');
      continue;
    }
    if (!candidates.some((c) => c.system === system && c.value === id.value))
      candidates.push({ system, value: id.value });
  }
  if (candidates.length === 0) {
    throw new EhrSubjectError(
      `the order has no EHR Patient reference and none of its patient identifiers has a FHIR system ` +
        `(assigning authority ${[...unmapped].join(', ')}: map it in FHIR_PATIENT_IDENTIFIER_SYSTEMS)`,
    );
  }

  for (const c of candidates) {
    const found = await ehr.search('Patient', { identifier: `${c.system}|${c.value}`, _count: '2' });
    const patients = (found.entry ?? [])
      .filter((e) => e.resource?.resourceType === 'Patient' && e.resource.id && e.search?.mode !== 'include')
      .map((e) => e.resource!);
    if (patients.length > 1 || (found.total ?? 0) > 1) {
      throw new EhrSubjectError(
        `${Math.max(patients.length, found.total ?? 0)} Patients in the EHR have the order's identifier ` +
          `(${c.system}): not guessing which one the report is about`,
      );
    }
    if (patients.length === 1) return { reference: `Patient/${patients[0]!.id}` };
  }
  throw new EhrSubjectError(
    `No Patient in the EHR has the order's identifier (${candidates.map((c) => c.system).join(', ')}); the report was not sent`,
  );
}
