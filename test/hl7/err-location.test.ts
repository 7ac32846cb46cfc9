import { Message } from 'node-hl7-client';
import { intakeGatewayForSuite } from './support/gateway';
import { ackOf } from './support/mllp-test-client';

jest.setTimeout(60_000);

/**
 * ERR-2 (ERL: segment ^ sequence ^ field) must point at a segment of the message: the interface engineer
 * reads it to find what to fix. A further OBR under one ORC is an order group of its own, so group numbers
 * and ORC occurrences differ.
 */
describe('HL7 ERR-2 names the segment occurrence that holds the problem', () => {
  const suite = intakeGatewayForSuite();

  const msg = (controlId: string, segments: string[]) =>
    [
      `MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01^ORM_O01|${controlId}|P|2.5.1`,
      'PID|1||MRN1^^^GENHOSP^MR||DOE^J',
      ...segments,
    ].join('\r');
  const obr = (n: number, placer: string) => `OBR|${n}|${placer}||34994-4^Smear^LN|||20260101113000`;
  const erl = (reply: string) => new Message({ text: reply }).get('ERR.2').toRaw();

  it('a cancellation of an unknown order in the second ORC, after an ORC with two OBRs: ORC^2^2', async () => {
    const reply = await suite.conn.request(
      msg('LOC-1', ['ORC|NW|LOC-A', obr(1, 'LOC-A'), obr(2, 'LOC-B'), 'ORC|CA|LOC-UNKNOWN']),
    );
    expect(ackOf(reply).code).toBe('AE');
    expect(ackOf(reply).errors[0]).toContain('|204^Unknown key identifier^HL70357|');
    expect(erl(reply)).toBe('ORC^2^2');
  });

  it('an order group without its OBR: its ORC (ORC^2), not the OBR of another group', async () => {
    const reply = await suite.conn.request(msg('LOC-4', ['ORC|NW|LOC-E', obr(1, 'LOC-E'), 'ORC|NW|LOC-F']));
    expect(ackOf(reply).code).toBe('AE');
    expect(ackOf(reply).errors[0]).toContain('|101^Required field missing^HL70357|');
    expect(erl(reply)).toBe('ORC^2');
  });

  it('a placer number taken before, in a further OBR under one ORC: that OBR-2 (OBR^2^2)', async () => {
    expect(ackOf(await suite.conn.request(msg('LOC-2', ['ORC|NW|LOC-C', obr(1, 'LOC-C')]))).code).toBe('AA');
    const reply = await suite.conn.request(msg('LOC-3', ['ORC|NW|LOC-D', obr(1, 'LOC-D'), obr(2, 'LOC-C')]));
    expect(ackOf(reply).code).toBe('AE');
    expect(ackOf(reply).errors[0]).toContain('|205^Duplicate key identifier^HL70357|');
    expect(erl(reply)).toBe('OBR^2^2');
  });
});
