import { Message } from 'node-hl7-client';
import { intakeGatewayForSuite } from './support/gateway';
import { ackOf } from './support/mllp-test-client';

jest.setTimeout(60_000);

/**
 * The placer order number is an EI: number ^ namespace id ^ universal id ^ type (`EPL9^EPIC`). The placer
 * knows its order by the whole EI, so our answers give it back whole.
 */
describe('HL7 placer order number: the whole EI comes back', () => {
  const suite = intakeGatewayForSuite();

  it('echoes ORC-2 / OBR-2 with namespace and universal id in the ORR^O02, and keeps them for the result', async () => {
    const msg = [
      'MSH|^~\\&|EPIC|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01^ORM_O01|EI-1|P|2.5.1|||AL|AL',
      'PID|1||MRN1^^^GENHOSP^MR||DOE^J',
      'ORC|NW|EPL9^EPIC^1.2.840.9^ISO',
      'OBR|1|EPL9^EPIC^1.2.840.9^ISO||34994-4^Smear^LN|||20260101113000',
    ].join('\r');
    suite.conn.send(msg);
    const [, orr] = (await suite.conn.waitFor(2)).slice(-2);
    expect(ackOf(orr!).code).toBe('AA');
    const m = new Message({ text: orr! });
    expect(m.get('ORC.2').toRaw()).toBe('EPL9^EPIC^1.2.840.9^ISO');
    expect(m.get('OBR.2').toRaw()).toBe('EPL9^EPIC^1.2.840.9^ISO');
    const [order] = await suite.gw.db.query(`SELECT placer_order_number, details FROM orders`);
    expect(order.placer_order_number).toBe('EPL9');
    expect(order.details.placerAuthority).toEqual({
      namespaceId: 'EPIC',
      universalId: '1.2.840.9',
      universalIdType: 'ISO',
    });
  });

  it('names a refused group by its whole EI too (ORC-1 UA)', async () => {
    const msg = [
      'MSH|^~\\&|EPIC|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01^ORM_O01|EI-2|P|2.5.1|||NE|AL',
      'PID|1||MRN1^^^GENHOSP^MR||DOE^J',
      'ORC|NW|EPL10^EPIC',
      'OBR|1|EPL10^EPIC||99999-9^Other^LN|||20260101113000',
    ].join('\r');
    const orr = await suite.conn.request(msg);
    expect(ackOf(orr).code).toBe('AE');
    const m = new Message({ text: orr });
    expect(m.get('ORC.1').toString()).toBe('UA');
    expect(m.get('ORC.2').toRaw()).toBe('EPL10^EPIC');
  });
});
