import { validateResource } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { Fhir } from 'fhir';
import { loadMedplumDefinitions } from './medplum-definitions';

let fhir: Fhir | undefined;

/**
 * Validates a resource with @medplum/core 4.5.2 `validateResource` (R4 profiles indexed) and with
 * the `fhir` 4.12 validator. Returns the errors of both (warnings and information are left out);
 * an empty list means valid.
 */
export function fhirValidationErrors(resource: Resource): string[] {
  loadMedplumDefinitions();
  const errors: string[] = [];
  try {
    for (const issue of validateResource(resource)) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        errors.push(`medplum: ${issue.expression?.join(',') ?? ''} ${issue.details?.text ?? issue.diagnostics ?? ''}`);
      }
    }
  } catch (err) {
    const outcome = (err as { outcome?: { issue?: Array<{ expression?: string[]; details?: { text?: string } }> } })
      .outcome;
    for (const issue of outcome?.issue ?? [{ details: { text: String(err) } }]) {
      errors.push(`medplum: ${issue.expression?.join(',') ?? ''} ${issue.details?.text ?? ''}`);
    }
  }
  fhir ??= new Fhir();
  const res = fhir.validate(resource, { errorOnUnexpected: true });
  for (const m of res.messages) {
    if (m.severity === 'error' || m.severity === 'fatal') errors.push(`fhir: ${m.location ?? ''} ${m.message ?? ''}`);
  }
  return errors;
}
