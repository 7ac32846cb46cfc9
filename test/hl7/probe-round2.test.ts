import { intakeGatewayForSuite } from './support/gateway';
import { RawMllpConnection, ackOf } from './support/mllp-test-client';
import { orderMessage } from './support/fixtures';

jest.setTimeout(60_000);

/**
 * What a hospital integration engineer checks on a new HL7 interface (second adversarial probe):
 * acknowledgement modes, MSH-9 as senders really write it, image pointers, segment terminators, duplicates.
 */
describe('HL7 intake as hospital interfaces send it', () => {
  const suite = intakeGatewayForSuite();
  const ordersOf = (controlId: string) =>
    suite.gw.db.query(
      `SELECT o.* FROM orders o JOIN inbound_messages im ON im.id = o.inbound_message_id WHERE im.control_id = $1`,
      [controlId],
    ) as Promise<Array<Record<string, any>>>;

  it('answers a refused message with an application AR when MSH-15 wants no commit ACK for it (NE/AL, SU/ER)', async () => {
    const c = await RawMllpConnection.open(suite.gw.mllpPort);
    try {
      // Unsupported message type, version: with MSH-15 NE or SU no CR is asked for; MSH-16 AL / ER wants an answer.
      c.send(orderMessage({ controlId: 'NEAL-1', acceptAck: 'NE', appAck: 'AL' }).replace('ORM^O01', 'ADT^A08'));
      c.send(orderMessage({ controlId: 'SUER-1', acceptAck: 'SU', appAck: 'ER', version: '2.9' }));
      // NE/NE: the sender asked for nothing, and gets nothing.
      c.send(orderMessage({ controlId: 'NENE-1', acceptAck: 'NE', appAck: 'NE' }).replace('ORM^O01', 'ADT^A08'));
      c.send(orderMessage({ controlId: 'NEAL-END' }));
      const replies = await c.waitFor(3);
      expect(replies.map((r) => [ackOf(r).code, ackOf(r).acked])).toEqual([
        ['AR', 'NEAL-1'],
        ['AR', 'SUER-1'],
        ['AA', 'NEAL-END'],
      ]);
      expect(ackOf(replies[0]!).errors[0]).toContain('200^Unsupported message type^HL70357');
      expect(ackOf(replies[1]!).errors[0]).toContain('203^Unsupported version id^HL70357');
      expect(await ordersOf('NEAL-1')).toHaveLength(0);
    } finally {
      c.close();
    }
  });

  it('refuses (AE 102) an OBX RP pointer the worker could not fetch: no host, a space in it, not http(s)', async () => {
    const urls = [
      'http://',
      'https://pacs .example.org/x.png',
      'http://[::1/x.png',
      'file:///etc/passwd',
      'javascript:x',
    ];
    for (const [i, url] of urls.entries()) {
      const id = `RP-BAD-${i}`;
      const reply = await suite.conn.request(
        orderMessage({
          controlId: id,
          groups: [{ placer: `PL-${id}`, extra: [`OBX|1|RP|IMG^Image||${url}^HB^IMAGE^PNG||||||F`] }],
        }),
      );
      expect([url, ackOf(reply).code]).toEqual([url, 'AE']);
      expect(ackOf(reply).errors[0]).toContain('|OBX^1^5^1^1|102^Data type error^HL70357|');
      expect(await ordersOf(id)).toHaveLength(0);
    }
  });

  it('reads MSH-9 in lower case as its code: answered ACK^O01^ACK, stored as ORM^O01', async () => {
    const msg = orderMessage({ controlId: 'LC9-1', version: '2.5.1' }).replace('ORM^O01^ORM_O01', 'orm^o01^orm_o01');
    const reply = await suite.conn.request(msg);
    expect(ackOf(reply).code).toBe('AA');
    expect(reply.split('\r')[0]!.split('|')[8]).toBe('ACK^O01^ACK');
    const [order] = await ordersOf('LC9-1');
    expect(order!.details.messageType).toBe('ORM^O01');
    const [inbound] = await suite.gw.db.query(`SELECT message_type FROM inbound_messages WHERE control_id = 'LC9-1'`);
    expect(inbound.message_type).toBe('ORM^O01');
  });

  it("names the sender's patient in the ORL^O22 to a cancellation (PID-3 is required there), as for a new order", async () => {
    const c = await RawMllpConnection.open(suite.gw.mllpPort);
    try {
      const enhanced = { type: 'OML', acceptAck: 'NE', appAck: 'AL' } as const;
      c.send(orderMessage({ controlId: 'ORLCA-1', ...enhanced, groups: [{ placer: 'ORLCA' }] }));
      c.send(orderMessage({ controlId: 'ORLCA-2', ...enhanced, groups: [{ placer: 'ORLCA', control: 'CA' }] }));
      c.send(orderMessage({ controlId: 'ORLCA-3', ...enhanced, groups: [{ placer: 'ORLCA-NO', control: 'CA' }] }));
      const replies = await c.waitFor(3);
      expect(replies.map((r) => [ackOf(r).code, r.split('\r').find((seg) => seg.startsWith('ORC'))])).toEqual([
        ['AA', expect.stringMatching(/^ORC\|OK\|ORLCA\|/)],
        ['AA', expect.stringMatching(/^ORC\|CR\|ORLCA\|/)],
        ['AE', 'ORC|UC|ORLCA-NO'],
      ]);
      for (const r of replies) {
        expect(r.split('\r').find((seg) => seg.startsWith('PID'))).toBe(
          'PID|1||MRN0001^^^GENHOSP^MR~99887766^^^NATID^NI',
        );
      }
    } finally {
      c.close();
    }
  });

  it('does not label its AR to an unsupported MSH-18 with that character set (its bytes are not in it)', async () => {
    const reply = await suite.conn.request(orderMessage({ controlId: 'CS16-1', charset: 'UNICODE UTF-16' }));
    expect(ackOf(reply)).toMatchObject({ code: 'AR', acked: 'CS16-1' });
    expect(ackOf(reply).errors[0]).toContain('|MSH^1^18|102^Data type error^HL70357|');
    expect(reply.split('\r')[0]!.split('|')[17] ?? '').toBe('');
  });

  it('takes LF or CRLF segment terminators, trailing empty segments and Z segments', async () => {
    const lf = `${orderMessage({ controlId: 'TERM-LF' }).split('\r').join('\n')}\n\n`;
    const crlf = `${orderMessage({ controlId: 'TERM-CRLF' }).split('\r').join('\r\n')}\r\nZHB|1|local\r\n`;
    for (const [id, msg] of [
      ['TERM-LF', lf],
      ['TERM-CRLF', crlf],
    ] as const) {
      expect(ackOf(await suite.conn.request(msg))).toMatchObject({ code: 'AA', acked: id });
      const [order] = await ordersOf(id);
      expect(order!.placer_order_number).toBe(`PL-${id}`);
      expect(order!.details.orderingProvider.family).toBe('WELBY');
    }
  });

  it('makes one order of a message sent on two connections at once, and gives both the same ACKs', async () => {
    const a = await RawMllpConnection.open(suite.gw.mllpPort);
    const b = await RawMllpConnection.open(suite.gw.mllpPort);
    try {
      for (let i = 0; i < 10; i++) {
        const enhanced = i % 2 === 1 ? { acceptAck: 'AL', appAck: 'AL' } : {};
        const msg = orderMessage({ controlId: `TWICE-${i}`, ...enhanced });
        a.send(msg);
        b.send(msg);
      }
      // 5 original-mode AAs + 5 x (CA + ORR) on each connection.
      const [ra, rb] = await Promise.all([a.waitFor(15), b.waitFor(15)]);
      expect(ra).toHaveLength(15);
      expect(rb).toEqual(ra);
      for (let i = 0; i < 10; i++) expect(await ordersOf(`TWICE-${i}`)).toHaveLength(1);
    } finally {
      a.close();
      b.close();
    }
  });
});
