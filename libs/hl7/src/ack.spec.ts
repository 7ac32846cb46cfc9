import { Message } from 'node-hl7-client';
import { Hl7ErrorCode, buildAck, readAck } from './ack';
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
