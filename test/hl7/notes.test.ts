import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startGateway, type TestGateway } from './support/gateway';
import { RawMllpConnection, ackOf } from './support/mllp-test-client';

jest.setTimeout(60_000);

/** NTE-3 (FT) repeats: a comment sent as several repetitions is one note, every line of it. */
describe('HL7 order notes (NTE-3)', () => {
  let gw: TestGateway;
  let conn: RawMllpConnection;

  beforeAll(async () => {
    gw = await startGateway({
      IMAGE_DIR: mkdtempSync(path.join(os.tmpdir(), 'hl7-img-')),
      HEMATO_ORDER_CODES: 'LN|34994-4=pbs_v1',
      HL7_SENDING_APP: 'HB-TEST',
      HL7_SENDING_FACILITY: 'HB-FAC',
    });
    conn = await RawMllpConnection.open(gw.mllpPort);
  });
  afterAll(async () => {
    conn?.close();
    await gw?.close();
  });

  it('keeps every repetition of NTE-3, and text after a literal component separator', async () => {
    const msg = [
      'MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01^ORM_O01|NTE-1|P|2.5.1',
      'PID|1||MRN1^^^GENHOSP^MR||DOE^J',
      'ORC|NW|NTE-PL1',
      'OBR|1|NTE-PL1||34994-4^Smear^LN|||20260101113000',
      'NTE|1|P|Returned from Ghana 2 weeks ago~Fever 39.5 C, query malaria|RE',
      'NTE|2|P|Hb 9.1 g/dL ^ falling',
    ].join('\r');
    expect(ackOf(await conn.request(msg)).code).toBe('AA');
    const [order] = await gw.db.query(`SELECT details FROM orders WHERE placer_order_number = 'NTE-PL1'`);
    expect(order.details.notes).toEqual([
      'Returned from Ghana 2 weeks ago\nFever 39.5 C, query malaria',
      'Hb 9.1 g/dL ^ falling',
    ]);
  });
});
