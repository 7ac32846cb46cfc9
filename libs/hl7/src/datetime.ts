/**
 * HL7 v2 date/time (TS/DTM: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`) to and from ISO 8601 /
 * FHIR dateTime. Both directions are textual: the precision and the offset are the sender's, never the
 * time zone of the machine we run on (a TS without an offset stays without one).
 */

const DTM = /^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?$/;

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * An HL7 TS/DTM as ISO 8601 with the same precision (`2026`, `2026-01`, `2026-01-01`,
 * `2026-01-01T11:30:00[.1234][+01:00]`; a time given to the minute gets `:00` seconds, as FHIR needs
 * them), or null when it is not a real date/time (wrong shape, month 13, 30 February, hour 24,
 * offset beyond ±14:00).
 */
export function hl7DateTimeToIso(value: string): string | null {
  const m = DTM.exec(value.trim());
  if (!m) return null;
  const [, y, mo, d, h, mi, s, frac = '', tz] = m;
  const year = Number(y);
  if (mo !== undefined && (Number(mo) < 1 || Number(mo) > 12)) return null;
  if (d !== undefined && (Number(d) < 1 || Number(d) > daysIn(year, Number(mo)))) return null;
  // An hour with no minutes is a legal DTM precision, but ISO has no such form: refused as ambiguous.
  if (h !== undefined && mi === undefined) return null;
  if (h !== undefined && Number(h) > 23) return null;
  if (mi !== undefined && Number(mi) > 59) return null;
  // 60: a leap second.
  if (s !== undefined && Number(s) > 60) return null;
  let zone = '';
  if (tz) {
    const hours = Number(tz.slice(1, 3));
    const minutes = Number(tz.slice(3));
    if (hours > 14 || minutes > 59 || (hours === 14 && minutes > 0)) return null;
    zone = `${tz.slice(0, 3)}:${tz.slice(3)}`;
  }
  // An offset on a date alone means nothing in ISO (and FHIR's date has none): a date stays a date.
  if (mo === undefined) return y!;
  if (d === undefined) return `${y}-${mo}`;
  if (h === undefined) return `${y}-${mo}-${d}`;
  return `${y}-${mo}-${d}T${h}:${mi}:${s ?? '00'}${frac}${zone}`;
}

const ISO = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?$/;

/**
 * ISO 8601 / FHIR dateTime back to an HL7 DTM, with the precision and offset it has (`Z` becomes
 * `+0000`, fractions beyond the four digits HL7 allows are cut). '' when it is not one.
 */
export function isoToHl7DateTime(value: string | null | undefined): string {
  const m = ISO.exec((value ?? '').trim());
  if (!m) return '';
  const [, y, mo = '', d = '', h = '', mi = '', s = '', frac = '', tz = ''] = m;
  const zone = tz === 'Z' ? '+0000' : tz.replace(':', '');
  const time = h ? `${h}${mi}${s}${s ? frac.slice(0, 5) : ''}${zone}` : '';
  return `${y}${mo}${d}${time}`;
}
