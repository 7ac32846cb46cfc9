import { MllpClient } from '@hemato/hl7';
import { eventually, generateSmear, SAMPLE_PATIENT, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import type { Browser, Page } from 'playwright-core';
import { createUser, launchChromium, newContext, orderRow, screenshot, signIn } from './dashboard-harness';

const ADMIN = { email: 'ada@lab.example', password: 'admin-password-123' };

/**
 * The whole system (gateway + MLLP, worker, Hemato.AI sandbox, a result receiver) with the dashboard
 * open in Chromium: HL7 orders sent during the test appear and complete without a reload, the page
 * shows the B50 report over the smear, and a rejected result delivery is retried by an admin.
 */
describe('dashboard end to end', () => {
  let p: Pipeline;
  let client: MllpClient;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    p = await startPipeline('dashe2e');
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
    await createUser(p.db, ADMIN.email, 'admin', ADMIN.password);
    browser = await launchChromium();
    page = await (await newContext(browser)).newPage();
    await signIn(page, p.httpUrl, ADMIN.email, ADMIN.password);
  });
  afterAll(async () => {
    await browser?.close();
    client?.close();
    await p?.close();
  });

  async function sendOrder(controlId: string, placer: string): Promise<string> {
    const smear = generateSmear({ width: 640, height: 480, format: 'png', seed: 7, parasites: true });
    const ack = await client.send(
      sampleOrm({ controlId, placer, images: [{ data: smear, subtype: 'PNG' }] }),
      controlId,
    );
    expect(ack.code).toBe('AA');
    const rows = await eventually(
      async () => {
        const r: Array<{ id: string; filler_order_number: string }> = await p.db.query(
          `SELECT id, filler_order_number FROM orders WHERE placer_order_number = $1`,
          [placer],
        );
        return r.length ? r : null;
      },
      10_000,
      'order row',
    );
    return rows[0]!.filler_order_number;
  }

  async function chipOf(filler: string, status: string, timeoutMs: number): Promise<void> {
    await orderRow(page, filler)
      .locator('.chip', { hasText: status.replace(/_/g, ' ') })
      .waitFor({ timeout: timeoutMs });
  }

  it('an HL7 order sent now appears in the open list and reaches completed without a reload', async () => {
    await page.getByRole('heading', { name: 'Orders' }).waitFor();
    await page.evaluate(() => ((window as unknown as { __noReload: number }).__noReload = 1));
    const filler = await sendOrder('DASH-E2E-1', 'PL-DASH-1');
    await orderRow(page, filler).waitFor({ timeout: 10_000 });
    await chipOf(filler, 'completed', 90_000);
    expect(await page.evaluate(() => (window as unknown as { __noReload?: number }).__noReload)).toBe(1);

    // Its page: the timeline, the B50 diagnosis, the heat map over the image, the ACK; the patient masked.
    await orderRow(page, filler).getByRole('link', { name: filler }).click();
    await page.getByRole('heading', { name: 'Timeline' }).waitFor();
    const steps = await page.locator('table.timeline tbody tr').allInnerTexts();
    expect(steps.some((t) => t.includes('report ready'))).toBe(true);
    expect(steps[steps.length - 1]).toContain('completed');
    await page.locator('table.diagnoses tbody tr', { has: page.getByText('B50', { exact: true }) }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('figure.smear circle.heat-spot').length > 0, undefined, {
      timeout: 10_000,
    });
    await page.locator('[data-delivery-target="hl7"] .chip', { hasText: 'acknowledged' }).waitFor();
    // Where the result went (one of several interface engines, with HL7_RESULT_ROUTES).
    expect(await page.locator('[data-delivery-target="hl7"] .delivery-head').innerText()).toContain(
      `to mllp://127.0.0.1:${p.receiver.port}`,
    );
    const text = await page.locator('main').innerText();
    for (const phi of [SAMPLE_PATIENT.family, SAMPLE_PATIENT.mrn, SAMPLE_PATIENT.street])
      expect(text).not.toContain(phi);
    await screenshot(page, 'e2e-order-page');
    await page.getByRole('link', { name: '← Orders' }).click();
  });

  it('a result the hospital rejects shows as a failed delivery; an admin retries it and it completes', async () => {
    p.receiver.answer = 'AR';
    const filler = await sendOrder('DASH-E2E-2', 'PL-DASH-2');
    await orderRow(page, filler).waitFor({ timeout: 10_000 });
    await chipOf(filler, 'failed', 90_000);

    await orderRow(page, filler).getByRole('link', { name: filler }).click();
    const hl7 = page.locator('[data-delivery-target="hl7"]');
    await hl7.locator('.chip', { hasText: 'failed' }).waitFor();
    await hl7.locator('summary').click();
    expect(await hl7.locator('pre').innerText()).toMatch(/MSA\|AR/);

    p.receiver.answer = 'AA';
    await page.getByRole('button', { name: 'Retry failed step' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Retry' }).click();
    const outcome = page.getByRole('status');
    await outcome.waitFor();
    expect(await outcome.getAttribute('class')).toBe('ok');

    await page.locator('.page-head .chip', { hasText: 'completed' }).waitFor({ timeout: 60_000 });
    await hl7.locator('.chip', { hasText: 'acknowledged' }).waitFor({ timeout: 10_000 });
    await p.receiver.waitFor((m) => m.includes('PL-DASH-2'), 10_000);
    const audit: Array<{ user_email: string; outcome: string }> = await p.db.query(
      `SELECT a.user_email, a.outcome FROM audit_log a JOIN orders o ON o.id::text = a.target_id
        WHERE a.action = 'order.retry' AND o.filler_order_number = $1`,
      [filler],
    );
    expect(audit).toEqual([{ user_email: ADMIN.email, outcome: 'ok' }]);
    await screenshot(page, 'e2e-retried-order');
  });
});
