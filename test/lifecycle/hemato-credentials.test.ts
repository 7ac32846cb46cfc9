import { createHash } from 'node:crypto';
import { MllpClient } from '@hemato/hl7';
import { OrderStatus } from '@hemato/common';
import { OrderEventEntity } from '@hemato/persistence';
import { generateSmear, orderReaches, phiValues, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

/**
 * The Hemato.AI account's password was changed at the vendor and ours is stale: the login is refused
 * (401). Logging in again and again with a wrong password could lock the vendor account, and no retry can
 * fix it: the order fails at once, saying why, with one login attempt.
 */
describe('a refused Hemato.AI login fails the order at once', () => {
  let p: Pipeline;
  let client: MllpClient;

  beforeAll(async () => {
    const vendorHash = createHash('sha256').update('the-password-at-the-vendor').digest('hex');
    p = await startPipeline('badcreds', {
      // The sandbox knows the account with another password than the one we hold.
      SANDBOX_USERS: `lab@hospital.example:${vendorHash}`,
      HEMATO_USER: 'lab@hospital.example',
      HEMATO_PASSWORD: 'our-stale-password',
    });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  it('fails the order with a credentials reason after one login, and never logs in again', async () => {
    const smear = generateSmear({ width: 160, height: 120, format: 'png', seed: 5, parasites: false });
    const ack = await client.send(
      sampleOrm({ controlId: 'CRED-1', placer: 'PL-CRED-1', images: [{ data: smear, subtype: 'PNG' }] }),
      'CRED-1',
    );
    expect(ack.code).toBe('AA');

    const failed = await orderReaches(p.db, { placerOrderNumber: 'PL-CRED-1' }, OrderStatus.Failed, 30_000);
    expect(failed.failedStep).toBe('orders.create-study');
    expect(failed.failureReason).toMatch(/Hemato\.AI refused our credentials/);
    expect(failed.failureReason).toMatch(/HEMATO_USER/);
    for (const v of phiValues()) expect(failed.failureReason!.toLowerCase()).not.toContain(v.toLowerCase());

    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: failed.id }, order: { id: 'ASC' } });
    const failedEvent = events.find((e) => e.type === 'status_changed' && e.toStatus === 'failed');
    expect(JSON.stringify(failedEvent?.detail)).toMatch(/refused our credentials/);

    // Let the reconciler (every second here) and any retry have their chance: still one login.
    await new Promise((r) => setTimeout(r, 4000));
    const { requests } = (await (await fetch(`${p.sandbox.url}/_sandbox/requests`)).json()) as {
      requests: Array<{ method: string; path: string; status?: number }>;
    };
    const logins = requests.filter((r) => r.path === '/auth/login');
    expect(logins).toHaveLength(1);
    expect(logins[0]!.status).toBe(401);

    // More orders while the credentials are still wrong: each fails for the same reason, and none of them
    // logs in again (a burst of orders must not become a burst of wrong logins).
    for (const id of ['CRED-2', 'CRED-3']) {
      expect(
        (
          await client.send(
            sampleOrm({ controlId: id, placer: `PL-${id}`, images: [{ data: smear, subtype: 'PNG' }] }),
            id,
          )
        ).code,
      ).toBe('AA');
    }
    for (const id of ['CRED-2', 'CRED-3']) {
      const next = await orderReaches(p.db, { placerOrderNumber: `PL-${id}` }, OrderStatus.Failed, 30_000);
      expect(next.failureReason).toMatch(/Hemato\.AI refused our credentials/);
    }
    const after = (await (await fetch(`${p.sandbox.url}/_sandbox/requests`)).json()) as {
      requests: Array<{ path: string }>;
    };
    expect(after.requests.filter((r) => r.path === '/auth/login')).toHaveLength(1);
  }, 90_000);
});
