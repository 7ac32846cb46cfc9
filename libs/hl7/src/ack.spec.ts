import { Message } from 'node-hl7-client';
import { Hl7ErrorCode, RECEIVER_TEXT_MAX, buildAck, readAck, receiverText } from './ack';
import { readHeader } from './header';

describe('buildAck', () => {
  const header = readHeader('MSH|^~\\&|LIS|GEN|HB|HB|20260101||ORM^O01^ORM_O01|CTRL-9|P|2.5.1||||||8859/1\rPID|1||X')!;

  it('names the message in MSA-2, has its own MSH-10 and MSH-9 ACK^<event>^ACK, and parses back with node-hl7-client', () => {
    const ack = buildAck({
      header,
      code: 'AE',
      us: { application: 'HB|APP', facility: 'FAC' },
      issues: [
        {
          code: Hl7ErrorCode.TableValueNotFound,
          location: { segment: 'OBR', sequence: 2, field: 4 },
          text: 'Test code LN|1 is not mapped',
        },
      ],
    });
    const m = new Message({ text: ack });
    expect(m.get('MSH.3').toString()).toBe('HB|APP');
    expect(m.get('MSH.5').toString()).toBe('LIS');
    expect(m.get('MSH.9').toRaw()).toBe('ACK^O01^ACK');
    expect(m.get('MSH.10').toString()).not.toBe('CTRL-9');
    expect(m.get('MSH.10').toString().length).toBeLessThanOrEqual(20);
    expect(m.get('MSH.12').toString()).toBe('2.5.1');
    expect(m.get('MSH.18').toString()).toBe('8859/1');
    expect(m.get('MSA.1').toString()).toBe('AE');
    expect(m.get('MSA.2').toString()).toBe('CTRL-9');
    expect(m.get('ERR.1.1').toString()).toBe('OBR');
    expect(m.get('ERR.2').toRaw()).toBe('OBR^2^4');
    expect(m.get('ERR.3').toRaw()).toBe('103^Table value not found^HL70357');
    expect(m.get('ERR.4').toString()).toBe('E');
    expect(m.get('ERR.8').toString()).toBe('Test code LN|1 is not mapped');
    expect(readAck(ack)).toMatchObject({ code: 'AE', ackedControlId: 'CTRL-9' });
  });

  it('answers input without a readable MSH with an AR that names nothing', () => {
    const ack = buildAck({
      header: null,
      code: 'AR',
      us: { application: 'HB', facility: 'HB' },
      issues: [{ code: Hl7ErrorCode.DataTypeError, text: 'no MSH' }],
    });
    expect(readAck(ack)).toMatchObject({ code: 'AR', ackedControlId: '' });
    expect(ack).toContain('ERR|^^^102&Data type error&HL70357||102^Data type error^HL70357|F');
  });

  it('cuts MSA-3 (80) and ERR-8 (250) texts before escaping them, never inside an escape or a character', () => {
    // Delimiters where the cut falls: cutting the escaped text would leave `\T` without its closing `\`.
    // An astral character (two UTF-16 units) straddling the cut: half of it would go out as U+FFFD.
    for (const [at, tail] of [
      [78, '&&&&'],
      [79, '🩸🩸'],
      [248, '|^~\\&'],
      [249, '🩸🩸'],
    ] as const) {
      const text = `${'x'.repeat(at)}${tail}`;
      const ack = buildAck({
        header,
        code: 'AE',
        us: { application: 'HB', facility: 'HB' },
        text,
        issues: [{ code: Hl7ErrorCode.TableValueNotFound, text }],
      });
      const m = new Message({ text: ack });
      const msa3 = m.get('MSA.3').toString();
      const err8 = m.get('ERR.8').toString();
      for (const [value, max] of [
        [msa3, 80],
        [err8, 250],
      ] as const) {
        // The longest run of whole characters within `max` UTF-16 units.
        let prefix = '';
        for (const ch of text) {
          if (prefix.length + ch.length > max) break;
          prefix += ch;
        }
        expect(value).toBe(prefix);
        expect(value).not.toMatch(/\ufffd|[\ud800-\udbff]$/);
      }
    }
  });
});

describe('receiverText', () => {
  const ack = (version: string, ...rest: string[]) =>
    [`MSH|^~\\&|LIS|GEN|HB|HB|20260101||ACK^R01^ACK|A1|P|${version}`, ...rest].join('\r');

  it("reads a v2.5 ACK's MSA-3, ERR-3 code and ERR-8 user message, and says a repeated text once", () => {
    expect(
      receiverText(
        ack('2.5.1', 'MSA|AE|C1|Unknown placer', 'ERR||OBR^1^2|204^Unknown key identifier^HL70357|E||||Unknown placer'),
      ),
    ).toBe('Unknown placer; 204 Unknown key identifier: Unknown placer');
    expect(receiverText(ack('2.5.1', 'MSA|AE|C1|Unknown placer'))).toBe('Unknown placer');
  });

  it("reads a v2.3 ACK's ERR-1 (segment^sequence^field^code&text&system, repeated) and other delimiters", () => {
    expect(
      receiverText(
        ack('2.3', 'MSA|AR|C1', 'ERR|PID^1^3^101&Required field missing&HL70357~PID^1^5^102&Data type error'),
      ),
    ).toBe('101 Required field missing, 102 Data type error');
    expect(
      receiverText('MSH#:*/%#LIS#GEN#HB#HB#2026##ACK#A1#P#2.4\rMSA#AE#C1#A/F/B: no\rERR#OBR:1:4:103%Table value'),
    ).toBe('A#B: no; 103 Table value');
  });

  it('makes control and bidirectional characters spaces, a lone surrogate U+FFFD, and cuts at 200 characters, never inside one', () => {
    expect(receiverText(ack('2.5', 'MSA|AR|C1|Bed\t4\u0007 \\.br\\ward\u202e7 \ud800!'))).toBe('Bed 4 ward 7 \ufffd!');
    const long = receiverText(ack('2.5', `MSA|AR|C1|${'a'.repeat(198)}😀😀`));
    expect(long).toBe(`${'a'.repeat(198)}…`);
    expect(long.length).toBeLessThanOrEqual(RECEIVER_TEXT_MAX);
    expect(receiverText(ack('2.5', 'MSA|AR|C1'))).toBe('');
    expect(receiverText('not an ACK')).toBe('');
  });
});
