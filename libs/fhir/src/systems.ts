/**
 * Code systems and identifier systems used in the resources we emit. Ours are URNs under
 * `urn:hemato-bridge:` so they never collide with a hospital's systems.
 */
export const FhirSystems = {
  loinc: 'http://loinc.org',
  ucum: 'http://unitsofmeasure.org',
  /**
   * ICD-10 (WHO): Hemato.AI's `icd10-code` (e.g. B50); the ORU codes the same diagnoses `I10`. Not ICD-10-CM
   * (`…/icd-10-cm`), the US clinical modification, which these codes were wrongly labelled as.
   */
  icd10: 'http://hl7.org/fhir/sid/icd-10',
  v20074: 'http://terminology.hl7.org/CodeSystem/v2-0074',
  observationCategory: 'http://terminology.hl7.org/CodeSystem/observation-category',
  dataOperation: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation',
  provenanceParticipant: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
  v20203: 'http://terminology.hl7.org/CodeSystem/v2-0203',
  /** Our order status, carried as Task.businessStatus. */
  orderStatus: 'urn:hemato-bridge:order-status',
  /** Our filler order number. */
  fillerOrder: 'urn:hemato-bridge:filler-order',
  diagnosticReport: 'urn:hemato-bridge:diagnostic-report',
  observation: 'urn:hemato-bridge:observation',
  feature: 'urn:hemato-bridge:feature-statistic',
  finding: 'urn:hemato-bridge:morphological-finding',
  device: 'urn:hemato-bridge:device',
  hematoReport: 'urn:hemato-bridge:hemato-report',
  /** meta.tag on our Provenance: lets a conditional create find the one for a report version. */
  reportTag: 'urn:hemato-bridge:report',
} as const;

/** LOINC codes we use. */
export const Loinc = {
  smearPanel: { code: '34994-4', display: 'Smear morphology panel - Blood' },
  morphologyNarrative: { code: '18314-5', display: 'Morphology [Interpretation] in Blood Narrative' },
} as const;

/** FHIR code system URI of an HL7 v2 coding-system name (table 0396), where one is known. */
export function fhirCodeSystem(v2Name: string): string | undefined {
  return { LN: FhirSystems.loinc, SCT: 'http://snomed.info/sct' }[v2Name.toUpperCase()];
}
