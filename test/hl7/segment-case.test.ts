import { buildOruR01 } from '@hemato/hl7';
import { PatientIdentityReader } from '@hemato/privacy';
import { Message } from 'node-hl7-client';
import { intakeGatewayForSuite } from './support/gateway';
import { ackOf } from './support/mllp-test-client';

jest.setTimeout(60_000);

/** Segment ids are read whatever their case; what we send on is always in upper case, as HL7 spells them. */
describe('HL7 order with lower-case segment ids', () => {
  const suite = intakeGatewayForSuite();

  it('is taken, and the PID kept for the result is a PID segment the receiver can read', async () => {
    const msg = [
      'MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101120000||ORM^O01|CASE-1|P|2.3',
      'pid|1||MRN1^^^GENHOSP^MR||DOE^JANE||19800101|F',
      'orc|NW|CASE-PL1',
      'obr|1|CASE-PL1||34994-4^Smear^LN|||20260101113000',
    ].join('\r');
    expect(ackOf(await suite.conn.request(msg)).code).toBe('AA');
    const [order] = await suite.gw.db.query(
      `SELECT patient_proxy_id FROM orders WHERE placer_order_number = 'CASE-PL1'`,
    );
    const identity = await suite.gw.gateway.app
      .get(PatientIdentityReader, { strict: false })
      .read(suite.gw.db.manager, order.patient_proxy_id);
    expect(identity?.hl7Pid).toBe('PID|1||MRN1^^^GENHOSP^MR||DOE^JANE||19800101|F');
    // The result echoes it: its patient is found by a receiver that looks for the PID segment.
    const { message } = buildOruR01({
      report: {
        pbs_study_id: 's',
        file_ids: [],
        feature_statistics: {},
        morphological_findings: {},
        diagnostic_report: { differential_diagnosis: [] },
        pathology_report: 'ok',
      },
      reportVersion: 1,
      us: { application: 'HB', facility: 'HB' },
      to: { application: 'LIS', facility: 'GENHOSP' },
      order: {
        placerOrderNumber: 'CASE-PL1',
        fillerOrderNumber: 'F1',
        test: { system: 'LN', code: '34994-4', display: null },
      },
      hl7Pid: identity!.hl7Pid!,
    });
    expect(new Message({ text: message }).get('PID.3.1').toString()).toBe('MRN1');
  });
});
