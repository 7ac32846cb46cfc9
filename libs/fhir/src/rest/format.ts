/**
 * Content negotiation for our FHIR responses. We serve JSON only: `_format` (which overrides `Accept`)
 * naming anything but JSON, or an `Accept` that admits no JSON type, is answered 406 Not Acceptable.
 */

const JSON_FORMATS = new Set(['json', 'application/json', 'application/fhir+json', 'application/json+fhir']);
const JSON_RANGES = new Set(['*', '*/*', 'application/*', ...JSON_FORMATS]);

/** A media type as compared: lower case, no parameters, a `+` that arrived as a space (`+` in a query) restored. */
function bare(type: string): string {
  return type.split(';')[0]!.trim().toLowerCase().replace(/ /g, '+');
}

/**
 * Why the response cannot be JSON, or undefined when it can. `format` is the `_format` parameter (the
 * first, if repeated), `accept` the Accept header; a missing or empty Accept accepts anything.
 */
export function unacceptableFormat(
  format: string | string[] | undefined,
  accept: string | string[] | undefined,
): string | undefined {
  const f = Array.isArray(format) ? format[0] : format;
  if (typeof f === 'string' && f.trim() !== '') {
    return JSON_FORMATS.has(bare(f))
      ? undefined
      : `_format=${f.slice(0, 64)} is not supported: this server answers JSON only (_format=json or application/fhir+json)`;
  }
  const text = (Array.isArray(accept) ? accept.join(',') : (accept ?? '')).trim();
  if (text === '') return undefined;
  const ok = text.split(',').some((range) => {
    const [type, ...params] = range.split(';');
    const q = params.map((p) => p.split('=').map((x) => x.trim())).find(([k]) => k?.toLowerCase() === 'q')?.[1];
    return JSON_RANGES.has(bare(type!)) && (q === undefined || Number(q) > 0);
  });
  return ok
    ? undefined
    : `Accept: ${text.slice(0, 128)} admits no format we serve: this server answers application/fhir+json only`;
}
