import type { Browser, Page } from 'playwright-core';
import {
  createUser,
  insertOrder,
  launchChromium,
  newContext,
  openOrder,
  signIn,
  startDashboardGateway,
  type DashboardGateway,
} from './dashboard-harness';
import { seedReportedOrder } from './seed-order';

const ADMIN = { email: 'ada@lab.example', password: 'admin-password-123' };

/**
 * Admin actions from the order page in Chromium, carried out by the real OrderActionsService
 * (jobs go to Redis; no worker runs here, so the test checks what the action itself changes).
 */
describe('dashboard actions in Chromium', () => {
  let g: DashboardGateway;
  let browser: Browser;

  beforeAll(async () => {
    g = await startDashboardGateway('dashact');
    await createUser(g.ds, ADMIN.email, 'admin', ADMIN.password);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await g?.stop();
  });

  async function adminPage(): Promise<Page> {
    const p = await (await newContext(browser)).newPage();
    await signIn(p, g.baseUrl, ADMIN.email, ADMIN.password);
    return p;
  }

  async function confirmAction(p: Page, button: string, confirm: string, reason?: string): Promise<string> {
    await p.getByRole('button', { name: button }).click();
    const dialog = p.getByRole('dialog');
    if (reason !== undefined) await dialog.getByLabel('Reason').fill(reason);
    await dialog.getByRole('button', { name: confirm }).click();
    const outcome = p.getByRole('status');
    await outcome.waitFor();
    return outcome.innerText();
  }

  it('retries a failed delivery: asks first, shows the outcome, the order moves live, the action is audited', async () => {
    const seeded = await seedReportedOrder(g.ds, g.config, 'F-ACT-RETRY');
    await g.ds.query(
      `UPDATE orders SET status = 'failed', failed_step = 'deliveries.fhir', failure_reason = 'EHR answered 422' WHERE id = $1`,
      [seeded.orderId],
    );
    const p = await adminPage();
    await openOrder(p, g.baseUrl, seeded.orderId);

    // Going back from the dialog does nothing.
    await p.getByRole('button', { name: 'Retry failed step' }).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Back' }).click();
    expect((await g.ds.query(`SELECT status FROM orders WHERE id = $1`, [seeded.orderId]))[0].status).toBe('failed');

    const message = await confirmAction(p, 'Retry failed step', 'Retry');
    const [order] = await g.ds.query(`SELECT status, failed_step FROM orders WHERE id = $1`, [seeded.orderId]);
    expect(order).toEqual({ status: 'delivering', failed_step: null });
    const [fhir] = await g.ds.query(`SELECT status FROM deliveries WHERE order_id = $1 AND target = 'fhir'`, [
      seeded.orderId,
    ]);
    expect(fhir.status).toBe('pending');
    const [audit] = await g.ds.query(
      `SELECT user_email, outcome, detail FROM audit_log WHERE action = 'order.retry' AND target_id = $1`,
      [seeded.orderId],
    );
    expect(audit).toMatchObject({ user_email: ADMIN.email, outcome: 'ok', detail: { message } });
    // The page follows the order without a reload, and the timeline names the admin.
    await p.locator('.page-head .chip', { hasText: 'delivering' }).waitFor();
    await p
      .locator('table.timeline tbody tr', { hasText: `admin:${ADMIN.email}` })
      .first()
      .waitFor();
    await p.context().close();
  });

  it('cancels an order with a reason', async () => {
    const id = await insertOrder(g.ds, { filler: 'F-ACT-CANCEL', status: 'awaiting_images' });
    const p = await adminPage();
    await openOrder(p, g.baseUrl, id);
    const message = await confirmAction(p, 'Cancel order', 'Cancel order', 'Placed twice');
    expect(message.length).toBeGreaterThan(0);
    const [order] = await g.ds.query(`SELECT status FROM orders WHERE id = $1`, [id]);
    expect(order.status).toBe('cancelled');
    const [audit] = await g.ds.query(
      `SELECT outcome, detail FROM audit_log WHERE action = 'order.cancel' AND target_id = $1`,
      [id],
    );
    expect(audit).toMatchObject({ outcome: 'ok', detail: { reason: 'Placed twice' } });
    // A cancelled order offers no cancel any more.
    await p.locator('.page-head .chip', { hasText: 'cancelled' }).waitFor();
    expect(await p.getByRole('button', { name: 'Cancel order' }).count()).toBe(0);
    await p.context().close();
  });

  it('holds an order with a reason and releases it: the page follows, both are audited', async () => {
    const id = await insertOrder(g.ds, { filler: 'F-ACT-HOLD', status: 'awaiting_images' });
    const p = await adminPage();
    await openOrder(p, g.baseUrl, id);
    const held = await confirmAction(p, 'Hold order', 'Hold', 'Specimen label to be checked');
    expect(held).toContain('on hold');
    expect((await g.ds.query(`SELECT status FROM orders WHERE id = $1`, [id]))[0].status).toBe('on_hold');
    await p.locator('.page-head .chip', { hasText: 'on hold' }).waitFor();
    await p.getByRole('note').filter({ hasText: 'nothing is sent to Hemato.AI' }).waitFor();
    expect(await p.getByRole('button', { name: 'Hold order' }).count()).toBe(0);

    const released = await confirmAction(p, 'Release hold', 'Release');
    expect(released).toContain('released');
    // Back to its first step (no worker runs here: the start job waits in Redis).
    expect((await g.ds.query(`SELECT status FROM orders WHERE id = $1`, [id]))[0].status).toBe('received');
    await p.locator('.page-head .chip', { hasText: 'received' }).waitFor();
    const audit = await g.ds.query(
      `SELECT action, outcome, detail FROM audit_log WHERE target_id = $1 AND action IN ('order.hold', 'order.release') ORDER BY id`,
      [id],
    );
    expect(audit).toMatchObject([
      { action: 'order.hold', outcome: 'ok', detail: { reason: 'Specimen label to be checked' } },
      { action: 'order.release', outcome: 'ok' },
    ]);
    await p.context().close();
  });

  it('offers no hold for an order already at Hemato.AI, and refuses one asked for anyway', async () => {
    const id = await insertOrder(g.ds, { filler: 'F-ACT-NOHOLD', status: 'processing' });
    const p = await adminPage();
    await openOrder(p, g.baseUrl, id);
    await p.locator('.page-head .chip', { hasText: 'processing' }).waitFor();
    expect(await p.getByRole('button', { name: 'Hold order' }).count()).toBe(0);
    const hold = (reason: string) =>
      p.evaluate(
        async ([orderId, why]) => {
          const r = await fetch(`/api/admin/orders/${orderId}/actions/hold`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ reason: why }),
          });
          return { status: r.status, body: (await r.json()) as { ok: boolean; message: string } };
        },
        [id, reason] as const,
      );
    expect(await hold('  ')).toEqual({
      status: 400,
      body: { ok: false, message: 'A reason is required to hold an order' },
    });
    const answer = await hold('too late');
    expect(answer.status).toBe(200);
    expect(answer.body.ok).toBe(false);
    expect(answer.body.message).toContain('already at Hemato.AI');
    expect((await g.ds.query(`SELECT status FROM orders WHERE id = $1`, [id]))[0].status).toBe('processing');
    await p.context().close();
  });

  it('shows a refused action as such: retrying an order that has not failed', async () => {
    const id = await insertOrder(g.ds, { filler: 'F-ACT-REFUSED', status: 'processing' });
    const p = await adminPage();
    await openOrder(p, g.baseUrl, id);
    const status = await p.evaluate(async (orderId) => {
      const r = await fetch(`/api/admin/orders/${orderId}/actions/retry`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      return { code: r.status, body: (await r.json()) as { ok: boolean; message: string } };
    }, id);
    expect(status.code).toBe(200);
    expect(status.body.ok).toBe(false);
    const [audit] = await g.ds.query(`SELECT outcome FROM audit_log WHERE action = 'order.retry' AND target_id = $1`, [
      id,
    ]);
    expect(audit.outcome).toBe('failed');
    await p.context().close();
  });
});
