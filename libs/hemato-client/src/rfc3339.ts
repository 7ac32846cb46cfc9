/**
 * RFC 3339 `date-time` (section 5.6): `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, with a real calendar date,
 * hours 00-23, minutes 00-59, seconds 00-60 (leap second) and an offset within ±23:59. `T`/`Z` may be
 * lower case (RFC 3339 allows it). A date alone, a time without an offset, or the reference's own
 * example `2021-01-02T15:0405+07:00` are not RFC 3339 date-times.
 *
 * The workflow-2 list document's `sample_collection_timestamp` is an "RFC3339 formated date time"
 * (reference): only values passing this check are ever sent.
 */
export function isRfc3339DateTime(value: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/.exec(value);
  if (!m) return false;
  const [, y, mo, d, h, mi, s, , , , oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  if (day > days) return false;
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 60) return false;
  if (oh !== undefined && (Number(oh) > 23 || Number(om) > 59)) return false;
  return true;
}
