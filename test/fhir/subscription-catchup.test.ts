import type { TestFhirServer } from '@hemato/testing';
import type { Patient, ServiceRequest, Subscription } from '@medplum/fhirtypes';
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { FhirSubscriptionManager } from '../../apps/gateway/src/fhir/fhir-subscription-manager.service';
import { API_KEY, patient, startGatewayWithEhr } from './fhir-helpers';

const OURS =
  'ServiceRequest?status=active,on-hold,revoked,entered-in-error&code=http://loinc.org|34994-4,http://loinc.org|57021-8';

/**
 * Which ServiceRequests are ours (the Subscription's criteria: our order codes, not every active order of
 * the hospital) and a catch-up that reads them page after page, up to FHIR_CATCHUP_MAX.
 */
describe('FHIR Subscription criteria and catch-up', () => {
  let ehr: TestFhirServer;
  let gw: RunningGateway;
  let ds: DataSource;
  let hook: string;
  let close: () => Promise<void>;
  let pat: Patient & { id: string };
  let n = 0;

  beforeAll(async () => {
    ({ ehr, gw, ds, hook, close } = await startGatewayWithEhr('fhircatchup', {
      FHIR_CATCHUP_PAGE_SIZE: '2',
      FHIR_CATCHUP_MAX: '5',
    }));
    pat = await ehr.create(patient(undefined as never, 'MRN-CATCHUP') as unknown as Patient);
  });
  afterAll(async () => close?.());

  async function order(code = '34994-4'): Promise<ServiceRequest & { id: string }> {
    const sr = await ehr.create<ServiceRequest>({
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:ehr:placer', value: `CU-${++n}` }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code }] },
      subject: { reference: `Patient/${pat.id}` },
    });
    await ehr.settled();
    return sr;
  }

  const taken = async (): Promise<string[]> =>
    (
      (await ds.query(`SELECT external_key FROM orders WHERE source_channel = 'fhir' ORDER BY external_key`)) as Array<{
        external_key: string;
      }>
    ).map((r) => r.external_key.replace('fhir:urn:ehr:placer|', ''));

  it('subscribes to our order codes only: the EHR does not notify us of its other orders', async () => {
    const manager = gw.app.get(FhirSubscriptionManager);
    const sub = await manager.ensure();
    await ehr.settled();
    expect(sub.criteria).toBe(OURS);
    const before = ehr.hookDeliveries.length;
    await order('24627-2'); // a chest X-ray order of the same hospital
    expect(ehr.hookDeliveries.length).toBe(before);
    const ours = await order('34994-4');
    expect(ehr.hookDeliveries.length).toBe(before + 1);
    expect(await taken()).toEqual([ours.identifier![0]!.value]);

    // A Subscription of ours with other criteria (the order codes changed since) is updated, not duplicated.
    const current = await ehr.repo.readResource<Subscription>('Subscription', sub.id!);
    await ehr.update({ ...current, id: sub.id!, criteria: 'ServiceRequest?status=active' });
    const again = await manager.ensure();
    expect(again.id).toBe(sub.id);
    expect((await ehr.repo.readResource<Subscription>('Subscription', sub.id!)).criteria).toBe(OURS);
    const latest = await ehr.repo.readResource<Subscription>('Subscription', sub.id!);
    await ehr.update({ ...latest, id: sub.id!, status: 'off' });
  });

  it('an empty notification reads our ServiceRequests page by page, newest first, up to FHIR_CATCHUP_MAX', async () => {
    // Seven of ours (newest last) and one of another department, none notified (our Subscription is off).
    const made: string[] = [];
    for (let i = 0; i < 7; i++) {
      made.push((await order()).identifier![0]!.value!);
      await new Promise((r) => setTimeout(r, 5)); // distinct meta.lastUpdated, so "newest first" is one order
    }
    await order('24627-2');
    const res = await fetch(hook, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(200);
    const outcome = (await res.json()) as { issue: Array<{ diagnostics: string }> };
    // The five newest of ours read, in pages of two; the two oldest not (FHIR_CATCHUP_MAX=5).
    expect(outcome.issue[0]!.diagnostics).toMatch(/5 order\(s\) created, 0 already known, 0 rejected/);
    const now = await taken();
    expect(now).toEqual(expect.arrayContaining(made.slice(2)));
    expect(now).not.toContain(made[0]);
    expect(now).not.toContain(made[1]);
    // Searches went to the EHR with our criteria and _count=2, and the next pages were followed.
    const searches = ehr.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/ServiceRequest'));
    expect(searches.length).toBeGreaterThanOrEqual(3);
  });
  it('learns of a revocation in the EHR: the revoked ServiceRequest is notified and cancels the order', async () => {
    // A query criteria (R4 Subscription) notifies what matches after the change: with status=active alone,
    // a ServiceRequest revoked in the EHR matched no more, was never notified, and its order went on.
    const manager = gw.app.get(FhirSubscriptionManager);
    const sub = await manager.ensure();
    await ehr.settled();
    try {
      const sr = await order();
      const key = `fhir:urn:ehr:placer|${sr.identifier![0]!.value}`;
      const statusOf = async () =>
        ((await ds.query(`SELECT status FROM orders WHERE external_key = $1`, [key])) as Array<{ status: string }>)[0]
          ?.status;
      expect(await statusOf()).toBe('received');
      await ehr.update({ ...sr, status: 'revoked' });
      await ehr.settled();
      expect(await statusOf()).toBe('cancelled');
      // A revoked ServiceRequest we never took in is nothing to cancel: answered, not counted as a rejection.
      const other = await ehr.create<ServiceRequest>({
        resourceType: 'ServiceRequest',
        identifier: [{ system: 'urn:ehr:placer', value: `CU-${++n}` }],
        status: 'revoked',
        intent: 'order',
        code: { coding: [{ system: 'http://loinc.org', code: '34994-4' }] },
        subject: { reference: `Patient/${pat.id}` },
      });
      await ehr.settled();
      expect(ehr.hookDeliveries.at(-1)!.status).toBe(200);
      const res = await fetch(hook, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify(other),
      });
      expect(res.status).toBe(200);
      const outcome = (await res.json()) as { issue: Array<{ diagnostics: string }> };
      expect(outcome.issue[0]!.diagnostics).toMatch(/0 order\(s\) created, 0 already known, 0 rejected/);
      expect(await taken()).not.toContain(other.identifier![0]!.value);
      // Revoked after our order was done (as EHRs tidy up old orders): nothing to stop, and no rejection either,
      // though every catch-up meets it again.
      const done = await order();
      await ehr.settled();
      await ds.query(`UPDATE orders SET status = 'completed' WHERE external_key = $1`, [
        `fhir:urn:ehr:placer|${done.identifier![0]!.value}`,
      ]);
      await ehr.update({ ...done, status: 'revoked' });
      await ehr.settled();
      const catchup = await fetch(hook, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
      expect(catchup.status).toBe(200);
      const caught = (await catchup.json()) as { issue: Array<{ diagnostics: string }> };
      expect(caught.issue[0]!.diagnostics).toMatch(/ 0 rejected/);
    } finally {
      const latest = await ehr.repo.readResource<Subscription>('Subscription', sub.id!);
      await ehr.update({ ...latest, id: sub.id!, status: 'off' });
    }
  });
});
