import type { MshHeader } from './header';

/**
 * HL7 v2 escape sequences, read with the sender's delimiters (MSH-1/MSH-2). Shared by the order reader
 * and the ACK builder (which echoes the sender's raw MSH values under our own delimiters).
 */

/** The message's delimiters (MSH-1 and MSH-2). */
export interface Delims {
  field: string;
  component: string;
  repetition: string;
  escape: string;
  subcomponent: string;
}

export const DEFAULT_DELIMS: Delims = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };

/** The delimiters are `|^~\&`, the ones everything we send uses. */
export function isDefaultDelims(d: Delims): boolean {
  return (
    d.field === DEFAULT_DELIMS.field &&
    d.component === DEFAULT_DELIMS.component &&
    d.repetition === DEFAULT_DELIMS.repetition &&
    d.escape === DEFAULT_DELIMS.escape &&
    d.subcomponent === DEFAULT_DELIMS.subcomponent
  );
}

export function delimsOf(header: MshHeader): Delims {
  const enc = header.encodingCharacters;
  return {
    field: header.fieldSeparator || '|',
    component: enc[0] || '^',
    repetition: enc[1] || '~',
    escape: enc[2] || '\\',
    subcomponent: enc[3] || '&',
  };
}

/** Unescapes HL7 text: \F\ \S\ \T\ \R\ \E\, \Xhh..\ and \.br\; other sequences are dropped. */
export function unescapeHl7(v: string, d: Delims = DEFAULT_DELIMS): string {
  if (!v.includes(d.escape)) return v;
  const e = d.escape.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return v.replace(new RegExp(`${e}([^${e}]*)${e}`, 'g'), (_m, code: string) => {
    switch (code) {
      case 'F':
        return d.field;
      case 'S':
        return d.component;
      case 'T':
        return d.subcomponent;
      case 'R':
        return d.repetition;
      case 'E':
        return d.escape;
      case '.br':
        return '\n';
      default:
        // NUL cannot be stored (PostgreSQL text) and never means anything in a field: dropped.
        if (/^X[0-9A-Fa-f]+$/.test(code))
          return Buffer.from(code.slice(1), 'hex').toString('latin1').replace(/\0/g, '');
        return '';
    }
  });
}

/** HL7 escaping of a text value for the default delimiters `|^~\&`. */
export function escapeHl7(v: string): string {
  return v.replace(/[\\|^~&\r\n]/g, (c) =>
    c === '\\'
      ? '\\E\\'
      : c === '|'
        ? '\\F\\'
        : c === '^'
          ? '\\S\\'
          : c === '&'
            ? '\\T\\'
            : c === '~'
              ? '\\R\\'
              : '\\.br\\',
  );
}

/**
 * A segment re-encoded from the sender's delimiters to the default ones (`|^~\&`), which everything we
 * send uses: each value is split on the sender's delimiters, unescaped, escaped for ours and joined again.
 * A segment already in the default delimiters is returned as it is.
 */
export function toDefaultDelimiters(segment: string, d: Delims): string {
  if (isDefaultDelims(d)) return segment;
  return segment
    .split(d.field)
    .map((field) =>
      field
        .split(d.repetition)
        .map((rep) =>
          rep
            .split(d.component)
            .map((comp) =>
              comp
                .split(d.subcomponent)
                .map((sub) => escapeHl7(unescapeHl7(sub, d)))
                .join('&'),
            )
            .join('^'),
        )
        .join('~'),
    )
    .join('|');
}
