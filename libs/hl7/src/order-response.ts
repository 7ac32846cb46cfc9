import { responseSegments, replyVersion, type AckOptions } from './ack';
import { escapeHl7 } from './escaping';
import type { PlacerAuthority } from './orders-in';
import { cxList } from './oru';

/** A placer order number as an EI (`number^namespace^universal id^type`), escaped, without empty trailing parts. */
export function placerEi(number: string, authority?: PlacerAuthority | null): string {
  const a = authority ?? {};
  return [number, a.namespaceId ?? '', a.universalId ?? '', a.universalIdType ?? '']
    .map(escapeHl7)
    .join('^')
    .replace(/\^+$/, '');
}

/**
 * ORC-1 of an order response (HL7 table 0119): OK = order accepted, UA = unable to accept,
 * CR = cancelled as requested, UC = unable to cancel, DR = discontinued as requested, UD = unable to
 * discontinue, OH = on hold as requested, UH = unable to put on hold, OR = released as requested, UR = unable
 * to release.
 */
export type OrderResponseControl = 'OK' | 'UA' | 'CR' | 'UC' | 'DR' | 'UD' | 'OH' | 'UH' | 'OR' | 'UR';

/** One ORC/OBR group of the order message, as we answer it. */
export interface OrderResponseLine {
  control: OrderResponseControl;
  placerOrderNumber: string;
  /** EI.2-4 of the placer number as the order sent them. */
  placerAuthority?: PlacerAuthority | null;
  /** Ours (assigned when the order was stored); absent when nothing was stored. */
  fillerOrderNumber?: string | null;
  test?: { system: string | null; code: string; display: string | null } | null;
}

export interface OrderResponseOptions extends AckOptions {
  lines: OrderResponseLine[];
  /**
   * Patient identifiers (CX: value, authority, type) for the PID that ORL^O22 before v2.6 needs ahead
   * of its orders. Identifiers only: the sender knows its patient; names and dates stay with us.
   */
  patientIds?: Array<{ value: string; authority?: string; type?: string }>;
}

/**
 * ORC-5 (HL7 table 0038) after our answer: scheduled (accepted, or released), cancelled, discontinued, on hold,
 * or left empty when nothing changed.
 */
const ORDER_STATUS: Record<OrderResponseControl, string> = {
  OK: 'SC',
  CR: 'CA',
  DR: 'DC',
  OH: 'HD',
  OR: 'SC',
  UA: '',
  UC: '',
  UD: '',
  UH: '',
  UR: '',
};

/**
 * The application acknowledgement of an order message in enhanced mode: ORR^O02 for ORM^O01 and
 * ORL^O22 for OML^O21 (HL7 v2.5.1 ch. 4), carrying MSA/ERR like an ACK plus one ORC (and OBR) per
 * order group, so the placer learns our filler number (ORC-3) or which group we could not take. Its
 * own MSH-15/16 are NE: it is itself an acknowledgement and asks for none back.
 */
export function buildOrderResponse(opts: OrderResponseOptions): string {
  const h = opts.header;
  const oml = h?.messageCode.toUpperCase() === 'OML';
  const version = replyVersion(h);
  // MSH-9.3 (message structure) exists from v2.3.1 on.
  const [code, event, structure] = oml ? ['ORL', 'O22', 'ORL_O22'] : ['ORR', 'O02', 'ORR_O02'];
  const type = version === '2.3' ? `${code}^${event}` : `${code}^${event}^${structure}`;
  const segments = responseSegments(opts, type, ['NE', 'NE']);
  if (opts.lines.length === 0) return segments.join('\r');
  const e = escapeHl7;
  // ORL^O22 up to v2.5.1 nests its orders in the patient group, which starts with a PID.
  if (oml && !/^2\.[6-9]/.test(version)) {
    segments.push(`PID|1||${cxList(opts.patientIds ?? [])}`);
  }
  const filler = (n: string | null | undefined) => (n ? `${e(n)}^${e(opts.us.application)}` : '');
  opts.lines.forEach((line, i) => {
    segments.push(
      [
        'ORC',
        line.control,
        placerEi(line.placerOrderNumber, line.placerAuthority),
        filler(line.fillerOrderNumber),
        '',
        ORDER_STATUS[line.control],
      ]
        .join('|')
        .replace(/\|+$/, ''),
    );
    if (line.test) {
      const service = [line.test.code, line.test.display ?? '', line.test.system ?? ''].map(e).join('^');
      segments.push(
        [
          'OBR',
          String(i + 1),
          placerEi(line.placerOrderNumber, line.placerAuthority),
          filler(line.fillerOrderNumber),
          service.replace(/\^+$/, ''),
        ].join('|'),
      );
    }
  });
  return segments.join('\r');
}
