/**
 * When the specimen was collected, as the order gave it. FHIR orders keep the Specimen's
 * collectedDateTime as `details.collectedAt`; HL7 orders keep OBR-7 (else SPM-17), made ISO with the
 * sender's precision and offset, as `details.collectionTime`. One reader for every consumer (the
 * Hemato.AI study list, the DiagnosticReport, the ORU), whichever channel the order came in on and
 * whichever channel its result goes out on.
 */
export function collectionTimeOf(details: unknown): string | null {
  const d = (details ?? {}) as { collectedAt?: unknown; collectionTime?: unknown };
  const value = [d.collectedAt, d.collectionTime].find((v): v is string => typeof v === 'string' && v !== '');
  return value ?? null;
}

const ISO_DATE_TIME = /^(\d{4}(?:-\d{2}(?:-\d{2})?)?)(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * An ISO date/time as a FHIR dateTime. FHIR requires a zone once a time is given; a time without one
 * (an HL7 TS sent without an offset: the sender's local time, in a zone we do not know) keeps only its
 * date, which is true, rather than a time that would be read as UTC. null when it is not ISO at all.
 */
export function asFhirDateTime(iso: string | null | undefined): string | null {
  const m = ISO_DATE_TIME.exec(iso ?? '');
  if (!m) return null;
  const hasTime = iso!.length > m[1]!.length;
  return hasTime && !m[2] ? m[1]! : iso!;
}
