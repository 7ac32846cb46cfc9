import { Message } from 'node-hl7-client';
import { intakeGatewayForSuite } from './support/gateway';
import { ackOf } from './support/mllp-test-client';

jest.setTimeout(60_000);

/**
 * The MSH of our answers, as HL7 v2.5.1 ch. 2 (2.9 / 2.14.9) wants it: MSH-5/6 are the message's MSH-3/4,
 * whole. IHE LTW / LAW senders name themselves by HD with a universal id (`LIS^2.16.840.1.113883.1^ISO`).
 */
describe('HL7 answers: MSH-5/6 are the sender MSH-3/4, whole', () => {
  const suite = intakeGatewayForSuite();

  const body = (placer: string, d = { f: '|', c: '^' }) => [
    `PID${d.f}1${d.f}${d.f}MRN1${d.c}${d.c}${d.c}GENHOSP${d.c}MR${d.f}${d.f}DOE${d.c}J`,
    `ORC${d.f}NW${d.f}${placer}`,
    `OBR${d.f}1${d.f}${placer}${d.f}${d.f}34994-4${d.c}Smear${d.c}LN${d.f}${d.f}${d.f}20260101113000`,
  ];

  it('echoes MSH-3/4 with their universal id in the ACK MSH-5/6 (original mode)', async () => {
    const msg = [
      'MSH|^~\\&|LIS^2.16.840.1.113883.3.1^ISO|GENHOSP^1.2.3.4.5^ISO|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01^ORM_O01|HD-1|P|2.5.1',
      ...body('HD-PL1'),
    ].join('\r');
    const reply = await suite.conn.request(msg);
    expect(ackOf(reply).code).toBe('AA');
    const m = new Message({ text: reply });
    expect(m.get('MSH.5').toRaw()).toBe('LIS^2.16.840.1.113883.3.1^ISO');
    expect(m.get('MSH.6').toRaw()).toBe('GENHOSP^1.2.3.4.5^ISO');
    // Kept with the order, for the result's MSH-5/6.
    const [order] = await suite.gw.db.query(`SELECT details FROM orders WHERE placer_order_number = 'HD-PL1'`);
    expect(order.details.senderHd).toEqual({
      application: ['LIS', '2.16.840.1.113883.3.1', 'ISO'],
      facility: ['GENHOSP', '1.2.3.4.5', 'ISO'],
    });
  });

  it('does so in the commit ACK and the ORR^O02 of enhanced mode, and for a refused message', async () => {
    const msg = [
      'MSH|^~\\&|LIS^2.16.840.1.113883.3.1^ISO|GENHOSP^1.2.3.4.5^ISO|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01^ORM_O01|HD-2|P|2.5.1|||AL|AL',
      ...body('HD-PL2'),
    ].join('\r');
    suite.conn.send(msg);
    const replies = (await suite.conn.waitFor(suite.conn.replies.length + 2)).slice(-2);
    expect(replies.map((r) => ackOf(r).code)).toEqual(['CA', 'AA']);
    for (const r of replies) {
      const m = new Message({ text: r });
      expect(m.get('MSH.5').toRaw()).toBe('LIS^2.16.840.1.113883.3.1^ISO');
      expect(m.get('MSH.6').toRaw()).toBe('GENHOSP^1.2.3.4.5^ISO');
    }
    const refused = await suite.conn.request(msg.replace('2.5.1', '2.9').replace('HD-2', 'HD-3'));
    expect(ackOf(refused).code).toBe('CR');
    expect(new Message({ text: refused }).get('MSH.6').toRaw()).toBe('GENHOSP^1.2.3.4.5^ISO');
  });

  it('answers a test or debug message as one (MSH-11 echoed: processing id, in any case, and mode)', async () => {
    const msg = (id: string, processing: string) =>
      [
        `MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01^ORM_O01|${id}|${processing}|2.5.1`,
        ...body(`${id}-PL`),
      ].join('\r');
    const t = await suite.conn.request(msg('PT-1', 't'));
    expect(ackOf(t).code).toBe('AA');
    expect(new Message({ text: t }).get('MSH.11').toRaw()).toBe('T');
    const mode = await suite.conn.request(msg('PT-2', 'D^I'));
    expect(ackOf(mode).code).toBe('AA');
    expect(new Message({ text: mode }).get('MSH.11').toRaw()).toBe('D^I');
  });

  it('writes them with our delimiters when the sender uses other encoding characters', async () => {
    const d = { f: '#', c: '$' };
    const msg = [
      'MSH#$%*@#LIS$2.16.840.1.113883.3.1$ISO#GENHOSP$1.2.3.4.5$ISO#HEMATO-BRIDGE#HEMATO#20260101120000##ORM$O01#HD-4#P#2.3',
      ...body('HD-PL4', d),
    ].join('\r');
    const reply = await suite.conn.request(msg);
    expect(ackOf(reply).code).toBe('AA');
    const m = new Message({ text: reply });
    expect(m.get('MSH.5').toRaw()).toBe('LIS^2.16.840.1.113883.3.1^ISO');
    expect(m.get('MSH.6').toRaw()).toBe('GENHOSP^1.2.3.4.5^ISO');
    const [order] = await suite.gw.db.query(`SELECT details FROM orders WHERE placer_order_number = 'HD-PL4'`);
    expect(order.details.senderHd.application).toEqual(['LIS', '2.16.840.1.113883.3.1', 'ISO']);
  });

  it('takes MSH-9 sent without its event (`ORM`) as ORM^O01: answered ACK^O01^ACK, stored as ORM^O01', async () => {
    const msg = ['MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM|EV-1|P|2.3', ...body('EV-PL1')].join(
      '\r',
    );
    const reply = await suite.conn.request(msg);
    expect(ackOf(reply).code).toBe('AA');
    expect(reply.split('\r')[0]!.split('|')[8]).toBe('ACK^O01^ACK');
    const [order] = await suite.gw.db.query(`SELECT details FROM orders WHERE placer_order_number = 'EV-PL1'`);
    expect(order.details.messageType).toBe('ORM^O01');
  });
});
