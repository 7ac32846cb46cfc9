/**
 * Who the patient is, as the ordering system told us. This is PHI: it is stored only encrypted,
 * read back only to address a result to the hospital, and never passed to the Hemato.AI client.
 */
export interface PatientIdentity {
  /** The identifier the proxy is keyed on: assigning authority (HL7 CX-4 / FHIR system) + value. */
  primary: { authority: string; value: string };
  /** Every identifier as received (MRN, national id, ...). */
  identifiers: Array<{ authority?: string; value: string; type?: string }>;
  name?: { family?: string; given?: string[]; text?: string };
  /** YYYY-MM-DD, or as much of it as was sent. */
  birthDate?: string;
  sex?: string;
  address?: string[];
  phone?: string[];
  /** HL7 only: the PID segment exactly as received, so ORU^R01 echoes it back unchanged. */
  hl7Pid?: string;
  /** FHIR only: the Patient reference in the EHR (e.g. `Patient/123`). */
  fhirPatientRef?: string;
}
