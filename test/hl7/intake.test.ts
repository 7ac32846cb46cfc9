import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeFrame } from '@hemato/hl7';
import { Message } from 'node-hl7-client';
import { MessageSealer, PatientIdentityReader } from '@hemato/privacy';
import { startGateway, type TestGateway } from './support/gateway';
import { RawMllpConnection, ackOf } from './support/mllp-test-client';
import { TINY_PNG, orderMessage } from './support/fixtures';

jest.setTimeout(60_000);

describe('HL7 v2 order intake over MLLP', () => {
  let gw: TestGateway;
  let conn: RawMllpConnection;
  const env = {
    IMAGE_DIR: mkdtempSync(path.join(os.tmpdir(), 'hl7-img-')),
    HEMATO_ORDER_CODES: 'LN|34994-4=pbs_v1,LN|57021-8=pbs_v1+cbc_v1',
    HL7_SENDING_APP: 'HB-TEST',
    HL7_SENDING_FACILITY: 'HB-FAC',
    IMAGE_URL_ALLOWED_HOSTS: 'pacs.example',
  };

  beforeAll(async () => {
    gw = await startGateway(env);
    conn = await RawMllpConnection.open(gw.mllpPort);
  });
  afterAll(async () => {
    conn?.close();
    await gw?.close();
  });

  /** Opens the stored (sealed) message bodies and ACKs, as the dashboard does. */
  const open = (stored: string) => gw.gateway.app.get(MessageSealer, { strict: false }).open(stored);

  const ordersOf = (controlId: string) =>
    gw.db.query(
      `SELECT o.* FROM orders o JOIN inbound_messages im ON im.id = o.inbound_message_id WHERE im.control_id = $1 ORDER BY o.placer_order_number`,
      [controlId],
    ) as Promise<Array<Record<string, any>>>;

  it('answers AA to an ORM^O01 v2.3 only after its order is stored, and reports the MLLP url', async () => {
    expect(gw.gateway.urls.mllp).toMatch(/^mllp:\/\/127\.0\.0\.1:\d+$/);
    const reply = await conn.request(orderMessage({ controlId: 'ORM-1' }));
    const ack = ackOf(reply);
    expect(ack.code).toBe('AA');
    expect(ack.acked).toBe('ORM-1');
    expect(ack.controlId).not.toBe('ORM-1');
    expect(reply).toMatch(/^MSH\|\^~\\&\|HB-TEST\|HB-FAC\|LIS\|GENHOSP\|\d{14}[+-]\d{4}\|\|ACK\^O01\^ACK\|/);
    // The ACK came after the commit: the order is visible from another connection right away.
    const orders = await ordersOf('ORM-1');
    expect(orders).toHaveLength(1);
    const o = orders[0]!;
    expect(o.status).toBe('received');
    expect(o.placer_order_number).toBe('PL-ORM-1');
    expect(o.filler_order_number).toMatch(/^HB\d{6}\d{6}$/);
    expect(o.test_system).toBe('LN');
    expect(o.test_code).toBe('34994-4');
    expect(o.tasks).toEqual(['pbs_v1']);
    expect(o.details.orderingProvider).toEqual({ id: '1234', family: 'WELBY', given: 'MARCUS', authority: 'NPI' });
    expect(o.details.collectionTime).toBe('2026-01-01T11:30:00');
    expect(o.details.processingId).toBe('P');
    // No patient identity in the order's details.
    expect(JSON.stringify(o.details)).not.toMatch(/TESTPATIENT|MRN0001|19700102/);
    const msg = await gw.db.query(`SELECT * FROM inbound_messages WHERE control_id = 'ORM-1'`);
    expect(msg[0].ack_code).toBe('AA');
    expect(msg[0].status).toBe('accepted');
    // The message and its ACK are kept, sealed: no patient value in clear in the row.
    expect(open(msg[0].ack)).toBe(reply);
    expect(open(msg[0].raw)).toContain('TESTPATIENT^ALICE');
    expect(JSON.stringify(msg[0])).not.toMatch(/TESTPATIENT|MRN0001|19700102/);
    // The PID was kept (encrypted) verbatim so the ORU can echo it; the proxy row holds no clear identifier.
    const identity = await gw.gateway.app
      .get(PatientIdentityReader, { strict: false })
      .read(gw.db.manager, o.patient_proxy_id);
    expect(identity?.primary).toEqual({ authority: 'GENHOSP', value: 'MRN0001' });
    expect(identity?.hl7Pid).toMatch(
      /^PID\|1\|\|MRN0001\^\^\^GENHOSP\^MR~99887766\^\^\^NATID\^NI\|\|TESTPATIENT\^ALICE\^Q\|/,
    );
    const proxyRow = await gw.db.query(`SELECT * FROM patient_proxies WHERE id = $1`, [o.patient_proxy_id]);
    expect(JSON.stringify(proxyRow)).not.toContain('MRN0001');
  });

  it('turns every ORC/OBR group of an OML^O21 v2.5.1 into its own order, with specimen, diagnoses and notes', async () => {
    const reply = await conn.request(
      orderMessage({
        controlId: 'OML-1',
        type: 'OML',
        version: '2.5.1',
        groups: [
          {
            placer: 'PL-A',
            extra: [
              'NTE|1||Suspected malaria \\T\\ anaemia',
              'DG1|1||B50.9^Plasmodium falciparum malaria, unspecified^I10||20260101|W',
              'DG1|2||D64.9^Anaemia, unspecified^I10C||20260101|W',
              'SPM|1|SP-77||BLDV^Blood venous^HL70487|||||||||||||20260101110000|20260101113000',
            ],
          },
          { placer: 'PL-B', code: '57021-8' },
        ],
      }),
    );
    expect(ackOf(reply).code).toBe('AA');
    const orders = await ordersOf('OML-1');
    expect(orders.map((o) => o.placer_order_number)).toEqual(['PL-A', 'PL-B']);
    expect(orders[1]!.tasks).toEqual(['pbs_v1', 'cbc_v1']);
    const d = orders[0]!.details;
    expect(d.notes).toEqual(['Suspected malaria & anaemia']);
    expect(d.diagnoses).toEqual([
      { code: 'B50.9', display: 'Plasmodium falciparum malaria, unspecified', system: 'I10', type: 'W' },
      { code: 'D64.9', display: 'Anaemia, unspecified', system: 'I10C', type: 'W' },
    ]);
    expect(d.specimens).toEqual([
      {
        id: 'SP-77',
        type: { code: 'BLDV', display: 'Blood venous', system: 'HL70487' },
        collectedAt: '2026-01-01T11:00:00',
        receivedAt: '2026-01-01T11:30:00',
      },
    ]);
    expect(d.collectionTime).toBe('2026-01-01T11:30:00');
  });

  it.each(['2.3', '2.3.1', '2.4', '2.5', '2.5.1'])('accepts ORM^O01 version %s', async (version) => {
    const reply = await conn.request(orderMessage({ controlId: `V-${version}`, version }));
    expect(ackOf(reply).code).toBe('AA');
    expect(await ordersOf(`V-${version}`)).toHaveLength(1);
  });

  it('records OBX ED (base64 PNG) and RP (URL) images as image sources of the order', async () => {
    const b64 = TINY_PNG.toString('base64');
    const reply = await conn.request(
      orderMessage({
        controlId: 'IMG-1',
        groups: [
          {
            placer: 'PL-IMG',
            extra: [
              `OBX|1|ED|SMEAR^Smear image^L||^IM^PNG^Base64^${b64}||||||F`,
              'OBX|2|RP|SMEAR^Smear image^L||https://pacs.example/img?id=7\\T\\sig=abc^PACS^IM^JPEG||||||F',
            ],
          },
        ],
      }),
    );
    expect(ackOf(reply).code).toBe('AA');
    const [order] = await ordersOf('IMG-1');
    const images = await gw.db.query(`SELECT * FROM image_files WHERE order_id = $1 ORDER BY name`, [order!.id]);
    expect(images).toHaveLength(2);
    expect(images[0]).toMatchObject({
      source: 'inline',
      status: 'stored',
      media_type: 'image/png',
      size_bytes: String(TINY_PNG.length),
    });
    expect(images[0].content_hash).toMatch(/^[0-9a-f]{56}$/);
    expect(images[1]).toMatchObject({
      source: 'url',
      status: 'pending',
      source_url: 'https://pacs.example/img?id=7&sig=abc',
      media_type: 'image/jpeg',
    });
    expect(order!.images_complete).toBe(true);
  });

  it('refuses (AE 102) OBX ED bytes that are not a JPEG, PNG or zip, whatever OBX-5.3 says', async () => {
    const notPng = Buffer.from('just some text, not an image').toString('base64');
    const ack = ackOf(
      await conn.request(
        orderMessage({
          controlId: 'IMG-BAD',
          groups: [{ placer: 'PL-IMG-BAD', extra: [`OBX|1|ED|SMEAR^Smear image^L||^IM^PNG^Base64^${notPng}||||||F`] }],
        }),
      ),
    );
    expect(ack.code).toBe('AE');
    expect(ack.errors[0]).toContain('|OBX^1^5^1^5|102^Data type error^HL70357|');
    expect(await ordersOf('IMG-BAD')).toHaveLength(0);
  });

  it('refuses (AE 102) an OBX RP URL whose host is not in IMAGE_URL_ALLOWED_HOSTS, naming the host only: no order', async () => {
    const b64 = TINY_PNG.toString('base64');
    const ack = ackOf(
      await conn.request(
        orderMessage({
          controlId: 'IMG-HOST',
          groups: [
            {
              placer: 'PL-IMG-HOST',
              extra: [
                `OBX|1|ED|SMEAR^Smear image^L||^IM^PNG^Base64^${b64}||||||F`,
                'OBX|2|RP|SMEAR^Smear image^L||https://reader:s3cret@elsewhere.example/img/PL-IMG-HOST.png^PACS^IM^PNG||||||F',
              ],
            },
          ],
        }),
      ),
    );
    expect(ack.code).toBe('AE');
    expect(ack.errors).toHaveLength(1);
    expect(ack.errors[0]).toContain('|OBX^2^5^1^1|102^Data type error^HL70357|');
    expect(ack.errors[0]).toContain('elsewhere.example is not in IMAGE_URL_ALLOWED_HOSTS');
    expect(ack.errors[0]).not.toMatch(/s3cret|PL-IMG-HOST\.png/);
    expect(await ordersOf('IMG-HOST')).toHaveLength(0);
    const images = await gw.db.query(`SELECT count(*)::int AS n FROM image_files WHERE source_url LIKE '%elsewhere%'`);
    expect(images[0].n).toBe(0);
  });

  it('replays the stored ACK for the same MSH-3 + MSH-10 and creates nothing new', async () => {
    const msg = orderMessage({ controlId: 'DUP-1' });
    const first = await conn.request(msg);
    const second = await conn.request(msg);
    expect(ackOf(first).code).toBe('AA');
    expect(second).toBe(first);
    expect(await ordersOf('DUP-1')).toHaveLength(1);
    // The same control id from another sender is another message.
    const other = await conn.request(orderMessage({ controlId: 'DUP-1', sendingApp: 'OTHERLIS' }));
    expect(ackOf(other).code).toBe('AA');
    const n = await gw.db.query(`SELECT count(*)::int AS n FROM inbound_messages WHERE control_id = 'DUP-1'`);
    expect(n[0].n).toBe(2);
    // Copies pipelined in one write (they land in one group commit): the first is stored, the others replay it.
    const c = await RawMllpConnection.open(gw.mllpPort);
    const copy = orderMessage({ controlId: 'DUP-BATCH' });
    c.write(Buffer.concat([encodeFrame(copy), encodeFrame(copy), encodeFrame(copy)]));
    const replies = await c.waitFor(3);
    c.close();
    expect(ackOf(replies[0]!).code).toBe('AA');
    expect(replies).toEqual([replies[0], replies[0], replies[0]]);
    expect(await ordersOf('DUP-BATCH')).toHaveLength(1);
  });

  it('answers AE 101 with an ERR when a required field is missing, and stores no order', async () => {
    const reply = await conn.request(orderMessage({ controlId: 'AE-101', groups: [{ placer: 'PL-X', code: '' }] }));
    const ack = ackOf(reply);
    expect(ack.code).toBe('AE');
    expect(ack.errors).toHaveLength(1);
    expect(ack.errors[0]).toContain('101^Required field missing^HL70357');
    expect(ack.errors[0]).toMatch(/^ERR\|OBR\^1\^4\^101&Required field missing&HL70357\|OBR\^1\^4\|/);
    expect(await ordersOf('AE-101')).toHaveLength(0);
    const noPid = ackOf(await conn.request(orderMessage({ controlId: 'AE-PID', omitPid: true })));
    expect(noPid.code).toBe('AE');
    expect(noPid.errors[0]).toContain('|PID^1|101^');
  });

  it('answers AE 103 for an unmapped test code, for the whole message', async () => {
    const reply = await conn.request(
      orderMessage({ controlId: 'AE-103', groups: [{ placer: 'PL-OK' }, { placer: 'PL-BAD', code: '12345-6' }] }),
    );
    const ack = ackOf(reply);
    expect(ack.code).toBe('AE');
    expect(ack.errors[0]).toContain('|103^Table value not found^HL70357|E|');
    expect(ack.errors[0]).toContain('OBR^2^4');
    expect(await ordersOf('AE-103')).toHaveLength(0);
    const stored = await gw.db.query(`SELECT status, ack_code FROM inbound_messages WHERE control_id = 'AE-103'`);
    expect(stored[0]).toEqual({ status: 'rejected', ack_code: 'AE' });
  });

  it('refuses (AE 102) an order whose OBR-7, SPM-17 or SPM-18 is not a real date/time, naming the field', async () => {
    const cases: Array<[string, string, string]> = [
      // [control id, what replaces the fixture's OBR-7, the ERR location]
      ['DT-ISO', '2026-01-01T11:30', 'OBR^1^7^1^1'],
      ['DT-MONTH', '20261301113000', 'OBR^1^7^1^1'],
      ['DT-FEB', '20250229', 'OBR^1^7^1^1'],
    ];
    for (const [controlId, value, location] of cases) {
      const text = orderMessage({ controlId }).replace('|||20260101113000|', `|||${value}|`);
      const ack = ackOf(await conn.request(text));
      expect(ack.code).toBe('AE');
      expect(ack.errors[0]).toContain(`|${location}|102^Data type error^HL70357|E|`);
      expect(ack.errors[0]).toContain('OBR-7 observation date/time is not an HL7 date/time');
      // The ERR names the field, never the value (a date of the patient's care).
      expect(ack.errors[0]).not.toContain(value);
      expect(await ordersOf(controlId)).toHaveLength(0);
    }
    const spm = (collected: string, received: string) =>
      orderMessage({
        controlId: `DT-SPM-${collected}-${received}`,
        type: 'OML',
        groups: [
          {
            placer: `PL-SPM-${collected}-${received}`,
            extra: [`SPM|1|SP-1||BLDV|||||||||||||${collected}|${received}`],
          },
        ],
      }).replace('|||20260101113000|', '||||');
    const badCollected = ackOf(await conn.request(spm('20260132', '20260101120000')));
    expect(badCollected.code).toBe('AE');
    expect(badCollected.errors[0]).toContain('|SPM^1^17^1^1|102^');
    const badReceived = ackOf(await conn.request(spm('20260101110000', '202601011261')));
    expect(badReceived.code).toBe('AE');
    expect(badReceived.errors[0]).toContain('|SPM^1^18^1^1|102^');
    // Without OBR-7, SPM-17 is the collection time: kept with the precision and offset it was sent with.
    const good = ackOf(await conn.request(spm('202601011100-0500', '20260101120000.25-0500')));
    expect(good.code).toBe('AA');
    const [order] = await ordersOf('DT-SPM-202601011100-0500-20260101120000.25-0500');
    expect(order!.details.collectionTime).toBe('2026-01-01T11:00:00-05:00');
    expect(order!.details.specimens[0]).toMatchObject({
      collectedAt: '2026-01-01T11:00:00-05:00',
      receivedAt: '2026-01-01T12:00:00.25-05:00',
    });
  });

  it("maps OBR-4's alternate coding (4.4-4.6) when the primary is the EHR's local code, and keeps both", async () => {
    const local = (controlId: string, alt: string) =>
      orderMessage({ controlId, groups: [{ placer: `PL-${controlId}`, code: 'SMEAR', system: `L^${alt}` }] });
    const ack = ackOf(await conn.request(local('ALT-1', '34994-4^Peripheral blood smear^LN')));
    expect(ack.code).toBe('AA');
    const [order] = await ordersOf('ALT-1');
    // The order keeps the code it was placed with; the tasks come from the mapped LOINC.
    expect([order!.test_system, order!.test_code, order!.tasks]).toEqual(['L', 'SMEAR', ['pbs_v1']]);
    expect(order!.details.alternateTest).toEqual({ code: '34994-4', display: 'Peripheral blood smear', system: 'LN' });
    const unmapped = ackOf(await conn.request(local('ALT-2', '99999-9^Something else^LN')));
    expect(unmapped.code).toBe('AE');
    expect(unmapped.errors[0]).toContain('Test code L\\F\\SMEAR (alternate LN\\F\\99999-9) is not mapped');
  });

  it('keeps MSH-11 of a training order (T) so that its result goes back as training, and echoes it in the ACK', async () => {
    const text = orderMessage({ controlId: 'PROC-T' }).replace('|PROC-T|P|', '|PROC-T|T|');
    const reply = await conn.request(text);
    expect(ackOf(reply).code).toBe('AA');
    expect(reply.split('\r')[0]!.split('|')[10]).toBe('T');
    const [order] = await ordersOf('PROC-T');
    expect(order!.details.processingId).toBe('T');
  });

  it('answers AR 200 for an unsupported message type and AR 203 for an unsupported version', async () => {
    const adt = orderMessage({ controlId: 'AR-200' }).replace('ORM^O01', 'ADT^A01');
    const ack = ackOf(await conn.request(adt));
    expect(ack.code).toBe('AR');
    expect(ack.acked).toBe('AR-200');
    expect(ack.errors[0]).toContain('|200^Unsupported message type^HL70357|F|');
    const v = ackOf(await conn.request(orderMessage({ controlId: 'AR-203', version: '2.7' })));
    expect(v.code).toBe('AR');
    expect(v.errors[0]).toContain('|203^');
    const stored = await gw.db.query(`SELECT count(*)::int AS n FROM inbound_messages WHERE control_id LIKE 'AR-%'`);
    expect(stored[0].n).toBe(0);
  });

  it('answers AR 102 to input that is not HL7 and to a message the parser refuses', async () => {
    const garbage = ackOf(await conn.request('this is not hl7 at all'));
    expect(garbage.code).toBe('AR');
    expect(garbage.acked).toBe('');
    expect(garbage.errors[0]).toContain('|102^Data type error^HL70357|');
    const charset = ackOf(await conn.request(orderMessage({ controlId: 'AR-CS', charset: 'KOI8-R' })));
    expect(charset.code).toBe('AR');
    expect(charset.errors[0]).toContain('|102^');
  });

  it('cancels an order on ORC-1 CA and refuses (AE) to cancel it twice or to cancel an unknown one', async () => {
    expect(ackOf(await conn.request(orderMessage({ controlId: 'NW-C', groups: [{ placer: 'PL-CANCEL' }] }))).code).toBe(
      'AA',
    );
    const ca = ackOf(
      await conn.request(orderMessage({ controlId: 'CA-1', groups: [{ placer: 'PL-CANCEL', control: 'CA' }] })),
    );
    expect(ca.code).toBe('AA');
    const [order] = await ordersOf('NW-C');
    expect(order!.status).toBe('cancelled');
    const events = await gw.db.query(`SELECT to_status, actor FROM order_events WHERE order_id = $1 ORDER BY id`, [
      order!.id,
    ]);
    expect(events.map((e: { to_status: string }) => e.to_status)).toEqual(['received', 'cancelled']);
    const again = ackOf(
      await conn.request(orderMessage({ controlId: 'CA-2', groups: [{ placer: 'PL-CANCEL', control: 'CA' }] })),
    );
    expect(again.code).toBe('AE');
    expect(again.errors[0]).toContain('|207^');
    const unknown = ackOf(
      await conn.request(orderMessage({ controlId: 'CA-3', groups: [{ placer: 'PL-NOPE', control: 'CA' }] })),
    );
    expect(unknown.code).toBe('AE');
    expect(unknown.errors[0]).toContain('|204^Unknown key identifier^HL70357|');
  });

  it('discontinues an order on ORC-1 DC (as EHRs send when an order is stopped): ORR ORC-1 DR, ORC-5 DC', async () => {
    const c = await RawMllpConnection.open(gw.mllpPort);
    try {
      const enhanced = { acceptAck: 'NE', appAck: 'AL' } as const;
      c.send(orderMessage({ controlId: 'NW-DC', ...enhanced, groups: [{ placer: 'PL-DC' }] }));
      c.send(orderMessage({ controlId: 'DC-1', ...enhanced, groups: [{ placer: 'PL-DC', control: 'DC' }] }));
      c.send(orderMessage({ controlId: 'DC-2', ...enhanced, groups: [{ placer: 'PL-DC-NOPE', control: 'DC' }] }));
      const [, discontinued, unable] = await c.waitFor(3);
      const [order] = await ordersOf('NW-DC');
      expect(order!.status).toBe('cancelled');
      expect(ackOf(discontinued!)).toMatchObject({ code: 'AA', acked: 'DC-1' });
      expect(discontinued!.split('\r').find((s) => s.startsWith('ORC'))).toBe(
        `ORC|DR|PL-DC|${order!.filler_order_number}^HB-TEST||DC`,
      );
      const events: Array<{ to_status: string; detail: { reason?: string } }> = await gw.db.query(
        `SELECT to_status, detail FROM order_events WHERE order_id = $1 ORDER BY id`,
        [order!.id],
      );
      expect(events.at(-1)).toMatchObject({ to_status: 'cancelled', detail: { reason: 'ORC-1 DC' } });
      // An order we never had: AE, ORC-1 UD (unable to discontinue).
      expect(ackOf(unable!)).toMatchObject({ code: 'AE', acked: 'DC-2' });
      expect(unable!.split('\r').find((s) => s.startsWith('ORC'))).toBe('ORC|UD|PL-DC-NOPE');
      // Order controls we do not act on are still refused, naming the ones we do.
      const xo = ackOf(
        await c.request(orderMessage({ controlId: 'XO-1', groups: [{ placer: 'PL-DC', control: 'XO' }] })),
      );
      expect(xo.code).toBe('AE');
      expect(xo.errors[0]).toContain('Order control XO is not supported (NW, CA, DC, HD, RL)');
    } finally {
      c.close();
    }
  });

  it('reads MSH-18 8859/1 (Latin-1 bytes) and UNICODE UTF-8 correctly and answers in the same character set', async () => {
    const latin = orderMessage({ controlId: 'CS-LATIN', charset: '8859/1', patientName: 'MÜLLER^JOSÉ' });
    const replyLatin = await conn.request(latin, 'latin1');
    expect(ackOf(replyLatin).code).toBe('AA');
    const utf = orderMessage({ controlId: 'CS-UTF8', charset: 'UNICODE UTF-8', patientName: 'ŁUKASZ^ŻÓŁW' });
    expect(ackOf(await conn.request(utf, 'utf8')).code).toBe('AA');
    const raw = await gw.db.query(
      `SELECT control_id, raw FROM inbound_messages WHERE control_id LIKE 'CS-%' ORDER BY control_id`,
    );
    expect(open(raw[0].raw)).toContain('MÜLLER^JOSÉ');
    expect(open(raw[1].raw)).toContain('ŁUKASZ^ŻÓŁW');
  });

  it('speaks enhanced mode: commit ACK per MSH-15 and application ACK per MSH-16', async () => {
    const c = await RawMllpConnection.open(gw.mllpPort);
    try {
      c.send(orderMessage({ controlId: 'ENH-1', version: '2.3', acceptAck: 'AL', appAck: 'AL' }));
      const [commit, app] = await c.waitFor(2);
      expect(ackOf(commit!)).toMatchObject({ code: 'CA', acked: 'ENH-1' });
      expect(ackOf(app!)).toMatchObject({ code: 'AA', acked: 'ENH-1' });
      expect(ackOf(commit!).controlId).not.toBe(ackOf(app!).controlId);
      // The commit ACK is an ACK; the application ACK of an ORM^O01 (v2.3) is ORR^O02 with our filler number.
      expect(commit!.split('|')[8]).toBe('ACK^O01^ACK');
      const orr = new Message({ text: app! });
      expect(orr.get('MSH.9').toRaw()).toBe('ORR^O02');
      expect(orr.get('MSH.15').toString()).toBe('NE');
      const [enh1] = await ordersOf('ENH-1');
      expect(orr.get('ORC.1').toString()).toBe('OK');
      expect(orr.get('ORC.2').toString()).toBe('PL-ENH-1');
      expect(orr.get('ORC.3').toRaw()).toBe(`${enh1!.filler_order_number}^HB-TEST`);
      expect(orr.get('ORC.5').toString()).toBe('SC');
      expect(orr.get('OBR.4').toRaw()).toBe('34994-4^Peripheral blood smear^LN');
      // AL / ER: commit ACK always, application ACK only for an error.
      c.send(orderMessage({ controlId: 'ENH-2', version: '2.3', acceptAck: 'AL', appAck: 'ER' }));
      c.send(
        orderMessage({
          controlId: 'ENH-3',
          version: '2.3',
          acceptAck: 'AL',
          appAck: 'ER',
          groups: [{ placer: 'X', code: 'NOPE' }],
        }),
      );
      const more = await c.waitFor(5);
      expect(more.slice(2).map((r) => [ackOf(r).code, ackOf(r).acked])).toEqual([
        ['CA', 'ENH-2'],
        ['CA', 'ENH-3'],
        ['AE', 'ENH-3'],
      ]);
      // The refused group is named: unable to accept, no filler number, and the ERR says why.
      const refused = more[4]!.split('\r');
      expect(refused[0]!.split('|')[8]).toBe('ORR^O02');
      expect(refused.find((seg) => seg.startsWith('ORC'))).toBe('ORC|UA|X');
      // In v2.3 words: ERR-1 alone, the code as code&text&system.
      expect(refused.find((seg) => seg.startsWith('ERR'))).toBe('ERR|OBR^1^4^103&Table value not found&HL70357');
      // NE / AL: no commit ACK, only the application ACK.
      c.send(orderMessage({ controlId: 'ENH-4', version: '2.3', acceptAck: 'NE', appAck: 'AL' }));
      const [last] = (await c.waitFor(6)).slice(5);
      expect(ackOf(last!)).toMatchObject({ code: 'AA', acked: 'ENH-4' });
      // Unsupported type in enhanced mode: CR.
      c.send(
        orderMessage({ controlId: 'ENH-5', version: '2.3', acceptAck: 'AL', appAck: 'AL' }).replace(
          'ORM^O01',
          'ADT^A08',
        ),
      );
      const [cr] = (await c.waitFor(7)).slice(6);
      expect(ackOf(cr!)).toMatchObject({ code: 'CR', acked: 'ENH-5' });
      // Duplicate in enhanced mode: both stored ACKs again.
      c.send(orderMessage({ controlId: 'ENH-1', version: '2.3', acceptAck: 'AL', appAck: 'AL' }));
      const replay = (await c.waitFor(9)).slice(7);
      expect(replay).toEqual([commit, app]);
      expect(await ordersOf('ENH-1')).toHaveLength(1);
    } finally {
      c.close();
    }
  });

  it('gives a copy of an enhanced-mode message, arriving in the same group commit, the same ACKs', async () => {
    // A connection's messages go to group commit queue (connection number mod MLLP_COMMIT_CONCURRENCY, 2 here):
    // connections opened one after another get consecutive numbers, so the 1st, 3rd and 5th share a queue.
    // A first message keeps that queue busy, so the original and its copy (sent at the same moment, as a
    // sender retrying on a new connection would) wait and go into the next batch together.
    const conns: RawMllpConnection[] = [];
    for (let i = 0; i < 5; i++) conns.push(await RawMllpConnection.open(gw.mllpPort));
    try {
      const [busy, , first, , copy] = conns;
      for (let round = 1; round <= 5; round++) {
        busy!.send(orderMessage({ controlId: `SB-BUSY-${round}` }));
        const message = orderMessage({ controlId: `SB-${round}`, acceptAck: 'AL', appAck: 'AL' });
        first!.send(message);
        copy!.send(message);
        const [a, b] = await Promise.all([first!.waitFor(2 * round), copy!.waitFor(2 * round)]);
        await busy!.waitFor(round);
        const mine = (r: string[]) => r.slice(-2);
        expect(mine(b).map((x) => ackOf(x).code)).toEqual(['CA', 'AA']);
        expect(mine(b)).toEqual(mine(a));
        expect(await ordersOf(`SB-${round}`)).toHaveLength(1);
      }
    } finally {
      for (const c of conns) c.close();
    }
  });

  it('answers an enhanced-mode OML^O21 with ORL^O22 per group, and a cancellation with ORC-1 CR', async () => {
    const c = await RawMllpConnection.open(gw.mllpPort);
    try {
      c.send(
        orderMessage({
          controlId: 'ENH-OML',
          type: 'OML',
          acceptAck: 'NE',
          appAck: 'AL',
          groups: [{ placer: 'ENH-OML-A' }, { placer: 'ENH-OML-B', code: '57021-8' }],
        }),
      );
      const [orl] = await c.waitFor(1);
      const orders = await ordersOf('ENH-OML');
      expect(orders).toHaveLength(2);
      const segs = orl!.split('\r');
      expect(segs[0]!.split('|')[8]).toBe('ORL^O22^ORL_O22');
      expect(ackOf(orl!)).toMatchObject({ code: 'AA', acked: 'ENH-OML' });
      // v2.5.1 nests orders under the patient: a PID with the identifiers only (no name, birth date, address).
      expect(segs.find((s) => s.startsWith('PID'))).toBe('PID|1||MRN0001^^^GENHOSP^MR~99887766^^^NATID^NI');
      expect(orl).not.toMatch(/TESTPATIENT|19700102|TEST STREET/);
      expect(segs.filter((s) => s.startsWith('ORC'))).toEqual(
        orders.map((o) => `ORC|OK|${o.placer_order_number}|${o.filler_order_number}^HB-TEST||SC`),
      );
      // The stored ACK is the one sent (a duplicate gets it again).
      const stored = await gw.db.query(
        `SELECT ack, ack_code, status FROM inbound_messages WHERE control_id = 'ENH-OML'`,
      );
      expect(stored[0]).toMatchObject({ ack_code: 'AA', status: 'accepted' });
      expect(open(stored[0].ack)).toBe(orl);

      // Cancel the first order: ORC-1 CR with its filler number, status CA.
      c.send(
        orderMessage({
          controlId: 'ENH-CA',
          acceptAck: 'NE',
          appAck: 'AL',
          groups: [{ control: 'CA', placer: 'ENH-OML-A' }],
        }),
      );
      const [, cancelled] = await c.waitFor(2);
      const a = orders.find((o) => o.placer_order_number === 'ENH-OML-A')!;
      expect(ackOf(cancelled!)).toMatchObject({ code: 'AA', acked: 'ENH-CA' });
      expect(cancelled!.split('\r').find((s) => s.startsWith('ORC'))).toBe(
        `ORC|CR|ENH-OML-A|${a.filler_order_number}^HB-TEST||CA`,
      );
      // Cancelling an order we never had: AE, ORC-1 UC.
      c.send(
        orderMessage({
          controlId: 'ENH-CA2',
          acceptAck: 'NE',
          appAck: 'AL',
          groups: [{ control: 'CA', placer: 'NOPE-1' }],
        }),
      );
      const [, , unable] = await c.waitFor(3);
      expect(ackOf(unable!)).toMatchObject({ code: 'AE', acked: 'ENH-CA2' });
      expect(unable!.split('\r').find((s) => s.startsWith('ORC'))).toBe('ORC|UC|NOPE-1');
    } finally {
      c.close();
    }
  });

  it('refuses (AE 100) a message with a second PID rather than file its orders under the first patient', async () => {
    const two = orderMessage({ controlId: 'PID-2X', groups: [{ placer: 'PL-A' }] }).concat(
      '\rPID|1||MRN-OTHER^^^GENHOSP^MR||OTHER^PATIENT||19800101|M\rORC|NW|PL-B\rOBR|2|PL-B||34994-4^Smear^LN',
    );
    const ack = ackOf(await conn.request(two));
    expect(ack.code).toBe('AE');
    expect(ack.errors[0]).toMatch(/^ERR\|PID\^2\^\^100&Segment sequence error&HL70357\|PID\^2\|100\^/);
    expect(await ordersOf('PID-2X')).toHaveLength(0);
  });

  it('gives each further OBR under one ORC the placer number in its own OBR-2', async () => {
    const msg = [
      orderMessage({ controlId: 'OBR-2X', groups: [{ placer: 'PL-ORC' }] }).replace(
        /\rOBR\|1\|PL-ORC\|/,
        '\rOBR|1|PL-OBR1|',
      ),
      'OBR|2|PL-OBR2||34994-4^Smear^LN',
    ].join('\r');
    expect(ackOf(await conn.request(msg)).code).toBe('AA');
    expect((await ordersOf('OBR-2X')).map((o) => o.placer_order_number)).toEqual(['PL-OBR2', 'PL-ORC']);
  });

  it('refuses for good what PostgreSQL could never store: NUL bytes, identifiers over 199 characters', async () => {
    // Raw NUL in a note: AR 102 with a final reason (a resend would fail the same way), nothing stored.
    const nul = ackOf(
      await conn.request(
        orderMessage({ controlId: 'NUL-1', groups: [{ placer: 'PL-NUL1', extra: ['NTE|1||a\u0000b'] }] }),
      ),
    );
    expect(nul.code).toBe('AR');
    expect(nul.errors[0]).toContain('|102^Data type error^HL70357|');
    expect(nul.errors[0]).toContain('NUL');
    // An escaped NUL (\X00\) is dropped from the value; the rest of the order is taken.
    const x00 = orderMessage({ controlId: 'NUL-2', groups: [{ placer: 'PL-NUL2', extra: ['NTE|1||a\\X00\\b'] }] });
    expect(ackOf(await conn.request(x00)).code).toBe('AA');
    expect((await ordersOf('NUL-2'))[0]!.details.notes).toEqual(['ab']);
    const long = ackOf(
      await conn.request(orderMessage({ controlId: 'LONG-1', groups: [{ placer: 'P'.repeat(200) }] })),
    );
    expect(long.code).toBe('AE');
    expect(long.errors[0]).toContain('|ORC^1^2|102^');
    expect(await ordersOf('LONG-1')).toHaveLength(0);
    const longId = 'C'.repeat(200);
    const longMsh = ackOf(await conn.request(orderMessage({ controlId: longId })));
    expect(longMsh).toMatchObject({ code: 'AR', acked: longId });
    expect(longMsh.errors[0]).toContain('|MSH^1^10|102^');
  });

  it('answers a missing MSH-10 in enhanced mode with CR (nothing was committed), never CA', async () => {
    const c = await RawMllpConnection.open(gw.mllpPort);
    try {
      c.send(orderMessage({ controlId: '', acceptAck: 'AL', appAck: 'AL' }));
      const [only] = await c.waitFor(1);
      expect(ackOf(only!).code).toBe('CR');
      expect(ackOf(only!).errors[0]).toContain('|101^Required field missing^HL70357|');
      await new Promise((r) => setTimeout(r, 300));
      expect(c.replies).toHaveLength(1);
    } finally {
      c.close();
    }
  });

  it('echoes MSH-10 in MSA-2 exactly: escape sequences, UTF-8 sender and control id, a byte order mark', async () => {
    const escaped = ackOf(await conn.request(orderMessage({ controlId: 'ESC\\T\\1' })));
    expect(escaped).toMatchObject({ code: 'AA', acked: 'ESC\\T\\1' });
    // UTF-8: MSH-3 and MSH-10 with non-ASCII letters come back (and are stored) as sent.
    const utf = orderMessage({ controlId: 'UTF-ÄÖ', sendingApp: 'LÄB', charset: 'UNICODE UTF-8' });
    const reply = Buffer.from(await conn.request(utf, 'utf8'), 'latin1').toString('utf8');
    expect(ackOf(reply)).toMatchObject({ code: 'AA', acked: 'UTF-ÄÖ' });
    expect(reply.split('\r')[0]!.split('|')[4]).toBe('LÄB');
    const [row] = await gw.db.query(`SELECT sender FROM inbound_messages WHERE control_id = 'UTF-ÄÖ'`);
    expect(row.sender).toBe('LÄB|GENHOSP');
    // A UTF-8 byte order mark before MSH is not "no MSH".
    const c = await RawMllpConnection.open(gw.mllpPort);
    try {
      c.write(
        encodeFrame(
          Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(orderMessage({ controlId: 'BOM-1' }))]),
        ),
      );
      const [bom] = await c.waitFor(1);
      expect(ackOf(bom!)).toMatchObject({ code: 'AA', acked: 'BOM-1' });
    } finally {
      c.close();
    }
  });

  it('reads an MSH longer than 8 KiB whole: the answer names the message and the real problem', async () => {
    // MSH-8 (security) with 9,000 characters: node-hl7-client refuses it (AR 102, unparseable); the header
    // was once cut at 8 KiB, which misread MSH-12 and answered "unsupported version" (203).
    const long = orderMessage({ controlId: 'LONG-MSH' }).replace(
      '20260101120000||',
      `20260101120000|${'S'.repeat(9000)}|`,
    );
    const ack = ackOf(await conn.request(long));
    expect(ack).toMatchObject({ code: 'AR', acked: 'LONG-MSH' });
    expect(ack.errors[0]).toContain('|102^Data type error^HL70357|');
  });

  it('reads Latin-1 bytes as Latin-1 when MSH-18 is empty (a common sender habit), not as broken UTF-8', async () => {
    const latin = orderMessage({ controlId: 'CS-NONE', patientName: 'MÜLLER^JOSÉ' });
    expect(ackOf(await conn.request(latin, 'latin1')).code).toBe('AA');
    const [row] = await gw.db.query(`SELECT raw FROM inbound_messages WHERE control_id = 'CS-NONE'`);
    expect(open(row.raw)).toContain('MÜLLER^JOSÉ');
  });

  it('refuses (AR 102) bytes that are not the UTF-8 MSH-18 declares, rather than store the name garbled', async () => {
    // Latin-1 bytes labelled UTF-8: decoded anyway, É would become U+FFFD in the stored PID and in the result's PID.
    const mislabelled = orderMessage({
      controlId: 'CS-MISLABEL',
      charset: 'UNICODE UTF-8',
      patientName: 'MÜLLER^JOSÉ',
    });
    const ack = ackOf(await conn.request(mislabelled, 'latin1'));
    expect(ack.code).toBe('AR');
    expect(ack.acked).toBe('CS-MISLABEL');
    expect(ack.errors[0]).toContain('|MSH^1^18|102^Data type error^HL70357|F|');
    expect(ack.errors[0]).toContain('not valid UTF-8');
    const stored = await gw.db.query(`SELECT 1 FROM inbound_messages WHERE control_id = 'CS-MISLABEL'`);
    expect(stored).toHaveLength(0);
  });

  it('refuses (AE 205) an NW that reuses a placer number of the same sender, in a later message or the same one', async () => {
    expect(ackOf(await conn.request(orderMessage({ controlId: 'DUP-P1', groups: [{ placer: 'PL-DUP' }] }))).code).toBe(
      'AA',
    );
    const again = ackOf(await conn.request(orderMessage({ controlId: 'DUP-P2', groups: [{ placer: 'PL-DUP' }] })));
    expect(again.code).toBe('AE');
    expect(again.errors[0]).toContain('|ORC^1^2|205^Duplicate key identifier^HL70357|');
    const twice = ackOf(
      await conn.request(
        orderMessage({ controlId: 'DUP-P3', groups: [{ placer: 'PL-TWICE' }, { placer: 'PL-TWICE' }] }),
      ),
    );
    expect(twice.code).toBe('AE');
    expect(twice.errors[0]).toContain('|ORC^2^2|205^');
    // Another sender may use the same number: placer numbers are unique per placer application.
    const other = orderMessage({ controlId: 'DUP-P4', sendingApp: 'OTHERLIS', groups: [{ placer: 'PL-DUP' }] });
    expect(ackOf(await conn.request(other)).code).toBe('AA');
    const rows = await gw.db.query(
      `SELECT count(*)::int AS n FROM orders WHERE placer_order_number IN ('PL-DUP', 'PL-TWICE')`,
    );
    expect(rows[0].n).toBe(2);
    // So a cancellation names exactly one order.
    const ca = ackOf(
      await conn.request(orderMessage({ controlId: 'DUP-CA', groups: [{ placer: 'PL-DUP', control: 'CA' }] })),
    );
    expect(ca.code).toBe('AA');
    const [first] = await ordersOf('DUP-P1');
    expect(first!.status).toBe('cancelled');
    expect((await ordersOf('DUP-P4'))[0]!.status).toBe('received');
  });
});
