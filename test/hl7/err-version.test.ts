import { execFileSync } from 'node:child_process';
import { Message } from 'node-hl7-client';
import { intakeGatewayForSuite } from './support/gateway';
import { ackOf } from './support/mllp-test-client';

jest.setTimeout(60_000);

// Debian's python3-hl7 lives in the system interpreter (not a pyenv/venv one that may come first on PATH).
const PYTHON = process.env.HL7_PYTHON ?? '/usr/bin/python3';

/** The ERR segments of a reply as python3-hl7 reads them: each one's fields (after the segment id), as text. */
function errFields(reply: string): string[][] {
  const script = `
import sys, json, hl7
m = hl7.parse(sys.stdin.read())
print(json.dumps([[str(f) for f in s[1:]] for s in m.segments("ERR")]))
`;
  return JSON.parse(execFileSync(PYTHON, ['-c', script], { input: reply, encoding: 'utf8' })) as string[][];
}

/**
 * The ERR of our ACK in the sender's version (MSH-12): v2.3 and v2.4 have ERR-1 only (segment ^ sequence ^
 * field ^ code&text&system, CM in v2.3, ELD in v2.4); ERR-2..8 (location, HL7 error code, severity, user message)
 * came with v2.5, which keeps ERR-1 for backward compatibility.
 */
describe('the ERR of an ACK has the shape of the message version', () => {
  const suite = intakeGatewayForSuite();

  const orm = (controlId: string, version: string) =>
    [
      `MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01|${controlId}|P|${version}`,
      'PID|1||MRN1^^^GENHOSP^MR||DOE^J',
      `ORC|NW|${controlId}-A`,
      `OBR|1|${controlId}-A||99999-9^Not mapped^LN|||20260101113000`,
    ].join('\r');

  it.each(['2.3', '2.3.1', '2.4'])('an AE to a v%s ORM: ERR-1 only, with the code as code&text&system', async (v) => {
    const reply = await suite.conn.request(orm(`V${v.replace(/\./g, '')}-1`, v));
    expect(ackOf(reply).code).toBe('AE');
    expect(new Message({ text: reply }).get('MSH.12').toString()).toBe(v);
    const errs = errFields(reply);
    expect(errs).toEqual([['OBR^1^4^103&Table value not found&HL70357']]);
  });

  it('an AE to a v2.5.1 ORM: ERR-1 kept, ERR-2 location, ERR-3 HL7 error code, ERR-4 severity, ERR-8 user message', async () => {
    const reply = await suite.conn.request(orm('V251-1', '2.5.1'));
    expect(ackOf(reply).code).toBe('AE');
    const [err] = errFields(reply);
    expect(err).toHaveLength(8);
    expect(err!.slice(0, 7)).toEqual([
      'OBR^1^4^103&Table value not found&HL70357',
      'OBR^1^4',
      '103^Table value not found^HL70357',
      'E',
      '',
      '',
      '',
    ]);
    expect(err![7]).toMatch(/is not mapped/);
  });

  it('an AR to a v2.8 ORM (a version we do not take): ERR-1, withdrawn since v2.7, left empty; ERR-3 says 203', async () => {
    const reply = await suite.conn.request(orm('V28-1', '2.8'));
    expect(ackOf(reply).code).toBe('AR');
    const [err] = errFields(reply);
    expect(err!.slice(0, 4)).toEqual(['', 'MSH^1^12', '203^Unsupported version id^HL70357', 'F']);
  });
});
