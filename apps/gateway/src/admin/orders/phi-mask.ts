import type { PatientIdentity } from '@hemato/privacy';

/** Segments that carry a patient's (or relative's, guarantor's, insurer's) identity. */
const PHI_SEGMENTS = new Set(['PID', 'PD1', 'NK1', 'GT1', 'IN1', 'IN2', 'MRG', 'ACC']);
export const MASK = '•••';

/**
 * An HL7 v2 message with every field of identity segments replaced by a mask (the set id, PID-1,
 * is kept so the structure stays readable). Empty fields stay empty.
 */
export function maskHl7(raw: string): string {
  const fieldSep = raw.startsWith('MSH') && raw.length > 3 ? raw[3] : '|';
  return raw
    .split(/(\r\n|\r|\n)/)
    .map((line) => {
      const name = line.slice(0, 3);
      if (!PHI_SEGMENTS.has(name)) return line;
      const fields = line.split(fieldSep);
      return fields.map((f, i) => (i <= 1 || f === '' ? f : MASK)).join(fieldSep);
    })
    .join('');
}

const PATIENT_KEEP = new Set(['resourceType', 'id', 'meta']);

function maskJsonValue(v: unknown, insidePatient: boolean): unknown {
  if (Array.isArray(v)) return v.map((x) => maskJsonValue(x, insidePatient));
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const isPatient = o.resourceType === 'Patient' || o.resourceType === 'RelatedPerson' || o.resourceType === 'Person';
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(o)) {
      if (isPatient && !PATIENT_KEEP.has(k)) out[k] = MASK;
      // In a reference to the patient, its display is the name and its identifier (a logical reference) the MRN.
      else if ((k === 'display' || k === 'identifier') && insidePatient) out[k] = MASK;
      else if ((k === 'subject' || k === 'patient') && val && typeof val === 'object' && !Array.isArray(val))
        out[k] = maskJsonValue(val, true);
      else out[k] = maskJsonValue(val, false);
    }
    return out;
  }
  return v;
}

/**
 * A FHIR request body with Patient resources, and the display and identifier of subject/patient references,
 * masked; unparseable bodies are hidden whole.
 */
export function maskFhir(raw: string): string {
  try {
    return JSON.stringify(maskJsonValue(JSON.parse(raw), false), null, 2);
  } catch {
    return `${MASK} (not JSON: reveal to see)`;
  }
}

export function maskInbound(channel: string, raw: string): string {
  return forDisplay(channel === 'hl7' ? maskHl7(raw) : maskFhir(raw));
}

/**
 * A stored message as the page may show it, revealed or not: inline images as their size, and the password of
 * an image URL (`http://user:password@host/…`, which the worker sends as Basic auth) never shown to anyone.
 */
export function forDisplay(text: string): string {
  return hideUrlCredentials(elideBase64(text));
}

/**
 * `scheme://user:password@` → `scheme://•••@`. The user info ends at `@` and holds none of `/ ? # @`, blanks,
 * quotes or HL7 delimiters (`| ^ ~ \ &`), so a match never reaches past the URL it is in.
 */
export function hideUrlCredentials(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@|^~\\&"'<>]+@/gi, `$1${MASK}@`);
}

/** What the page shows before a reveal: that there is a patient, never who. */
export interface MaskedPatient {
  name: string;
  identifiers: string;
  birthDate: string;
}

export function maskedPatient(identity: PatientIdentity | null): MaskedPatient | null {
  if (!identity) return null;
  return { name: MASK, identifiers: MASK, birthDate: MASK };
}

/**
 * Inline images (HL7 OBX ED, FHIR attachment data) make a message megabytes long: the page shows
 * the size of each base64 run instead of the run itself.
 */
export function elideBase64(text: string): string {
  return text.replace(/[A-Za-z0-9+/]{512,}={0,2}/g, (run) => `[${run.length} characters of base64]`);
}
