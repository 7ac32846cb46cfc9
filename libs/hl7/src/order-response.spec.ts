import { Message } from 'node-hl7-client';
import { Hl7ErrorCode, readAck } from './ack';
import { readHeader } from './header';
import { buildOrderResponse } from './order-response';

const us = { application: 'HB', facility: 'HBFAC' };
const test = { system: 'LN', code: '34994-4', display: 'Peripheral blood smear' };

describe('buildOrderResponse', () => {
  it('answers an ORM^O01 v2.5.1 with ORR^O02: MSA, our filler number in ORC-3, order status scheduled, no PID', () => {
    const header = readHeader('MSH|^~\\&|LIS|GEN|HB|HB|20260101||ORM^O01^ORM_O01|CTRL-1|P|2.5.1|||AL|AL')!;
    const text = buildOrderResponse({
      header,
      code: 'AA',
      us,
      lines: [
        { control: 'OK', placerOrderNumber: 'PL-1', fillerOrderNumber: 'HB261127000001', test },
        { control: 'OK', placerOrderNumber: 'PL|2', fillerOrderNumber: 'HB261127000002', test },
      ],
    });
    const m = new Message({ text });
    expect(m.get('MSH.9').toRaw()).toBe('ORR^O02^ORR_O02');
    // It is itself an acknowledgement: it asks for none back.
    expect(m.get('MSH.15').toString()).toBe('NE');
    expect(m.get('MSH.16').toString()).toBe('NE');
    expect(m.get('MSA.1').toString()).toBe('AA');
    expect(m.get('MSA.2').toString()).toBe('CTRL-1');
    expect(readAck(text)).toMatchObject({ code: 'AA', ackedControlId: 'CTRL-1' });
    const segs = text.split('\r');
    expect(segs.some((s) => s.startsWith('PID'))).toBe(false);
    const orcs = segs.filter((s) => s.startsWith('ORC'));
    expect(orcs).toEqual(['ORC|OK|PL-1|HB261127000001^HB||SC', 'ORC|OK|PL\\F\\2|HB261127000002^HB||SC']);
    expect(segs.filter((s) => s.startsWith('OBR'))[0]).toBe(
      'OBR|1|PL-1|HB261127000001^HB|34994-4^Peripheral blood smear^LN',
    );
  });

  it('answers an OML^O21 v2.5.1 with ORL^O22 whose orders follow an identifiers-only PID', () => {
    const header = readHeader('MSH|^~\\&|LIS|GEN|HB|HB|20260101||OML^O21^OML_O21|CTRL-2|P|2.5.1|||NE|AL')!;
    const text = buildOrderResponse({
      header,
      code: 'AA',
      us,
      lines: [{ control: 'OK', placerOrderNumber: 'PL-3', fillerOrderNumber: 'HB261127000003', test }],
      patientIds: [{ value: 'MRN1', authority: 'GEN', type: 'MR' }],
    });
    const m = new Message({ text });
    expect(m.get('MSH.9').toRaw()).toBe('ORL^O22^ORL_O22');
    expect(text.split('\r').slice(2)).toEqual([
      'PID|1||MRN1^^^GEN^MR',
      'ORC|OK|PL-3|HB261127000003^HB||SC',
      'OBR|1|PL-3|HB261127000003^HB|34994-4^Peripheral blood smear^LN',
    ]);
  });

  it('carries the error and the refused groups of a rejected v2.3 order (no message structure in MSH-9)', () => {
    const header = readHeader('MSH|^~\\&|LIS|GEN|HB|HB|20260101||ORM^O01|CTRL-3|P|2.3|||AL|ER')!;
    const text = buildOrderResponse({
      header,
      code: 'AE',
      us,
      issues: [
        {
          code: Hl7ErrorCode.TableValueNotFound,
          location: { segment: 'OBR', sequence: 1, field: 4 },
          text: 'not mapped',
        },
      ],
      lines: [{ control: 'UA', placerOrderNumber: 'PL-4', test: { system: 'LN', code: 'NOPE', display: null } }],
    });
    const m = new Message({ text });
    expect(m.get('MSH.9').toRaw()).toBe('ORR^O02');
    expect(m.get('MSA.1').toString()).toBe('AE');
    // v2.3 has ERR-1 alone: the text goes in MSA-3.
    expect(m.get('MSA.3').toString()).toBe('not mapped');
    expect(text.split('\r').find((s) => s.startsWith('ERR'))).toBe('ERR|OBR^1^4^103&Table value not found&HL70357');
    expect(text.split('\r').filter((s) => /^(ORC|OBR)/.test(s))).toEqual(['ORC|UA|PL-4', 'OBR|1|PL-4||NOPE^^LN']);
  });
});
