import { intakeGatewayForSuite } from './support/gateway';
import { ackOf } from './support/mllp-test-client';

jest.setTimeout(60_000);

/** NTE-3 (FT) repeats: a comment sent as several repetitions is one note, every line of it. */
describe('HL7 order notes (NTE-3)', () => {
  const suite = intakeGatewayForSuite();

  it('keeps every repetition of NTE-3, and text after a literal component separator', async () => {
    const msg = [
      'MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01^ORM_O01|NTE-1|P|2.5.1',
      'PID|1||MRN1^^^GENHOSP^MR||DOE^J',
      'ORC|NW|NTE-PL1',
      'OBR|1|NTE-PL1||34994-4^Smear^LN|||20260101113000',
      'NTE|1|P|Returned from Ghana 2 weeks ago~Fever 39.5 C, query malaria|RE',
      'NTE|2|P|Hb 9.1 g/dL ^ falling',
    ].join('\r');
    expect(ackOf(await suite.conn.request(msg)).code).toBe('AA');
    const [order] = await suite.gw.db.query(`SELECT details FROM orders WHERE placer_order_number = 'NTE-PL1'`);
    expect(order.details.notes).toEqual([
      'Returned from Ghana 2 weeks ago\nFever 39.5 C, query malaria',
      'Hb 9.1 g/dL ^ falling',
    ]);
  });
});
