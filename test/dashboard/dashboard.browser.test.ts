import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import {
  createUser,
  insertOrder,
  launchChromium,
  newContext,
  openOrder,
  orderRow,
  screenshot,
  signIn,
  startDashboardGateway,
  type DashboardGateway,
} from './dashboard-harness';
import { RetentionService } from '@hemato/orders';
import { PATIENT, seedReportedOrder, type SeededOrder } from './seed-order';

const ADMIN = { email: 'ada@lab.example', password: 'admin-password-123' };
const VIEWER = { email: 'vic@lab.example', password: 'viewer-password-123' };

/** The dashboard in real Chromium against a gateway on a fresh database. */
describe('admin dashboard in Chromium', () => {
  let g: DashboardGateway;
  let browser: Browser;
  let seeded: SeededOrder;

  let peers: Server;

  beforeAll(async () => {
    // Stand-ins for Hemato.AI's /heartbeat and the EHR's /metadata, so the health page has real peers to ask.
    peers = createServer((req, res) => {
      if (req.url === '/heartbeat') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ delta: '0', heartbeat: 'abc', request_timestamp: Date.now(), version: '9.8.7' }));
      } else if (req.url === '/fhir/metadata') {
        res.setHeader('content-type', 'application/fhir+json');
        res.end(
          JSON.stringify({
            resourceType: 'CapabilityStatement',
            status: 'active',
            kind: 'instance',
            fhirVersion: '4.0.1',
          }),
        );
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => peers.listen(0, '127.0.0.1', r));
    const peer = `http://127.0.0.1:${(peers.address() as AddressInfo).port}`;
    g = await startDashboardGateway('dashui', {
      ADMIN_LOCKOUT_THRESHOLD: '3',
      HEMATO_BASE_URL: peer,
      FHIR_EHR_BASE_URL: `${peer}/fhir`,
      // No worker here: the retention test below runs the purge itself.
      RETENTION_DAYS: '30',
    });
    await createUser(g.ds, ADMIN.email, 'admin', ADMIN.password);
    await createUser(g.ds, VIEWER.email, 'viewer', VIEWER.password);
    await createUser(g.ds, 'lou@lab.example', 'admin', 'lockout-password-123');
    seeded = await seedReportedOrder(g.ds, g.config, 'F-REPORTED-1');
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await g?.stop();
    await new Promise((r) => peers?.close(r));
  });

  async function page(): Promise<Page> {
    return (await newContext(browser)).newPage();
  }

  it('refuses a wrong password, then signs in with the right one', async () => {
    const p = await page();
    await p.goto(`${g.baseUrl}/admin/`);
    await p.getByLabel('E-mail').fill(ADMIN.email);
    await p.getByLabel('Password').fill('not-my-password');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await expectText(p.getByRole('alert'), 'Wrong e-mail or password');
    expect(await p.getByRole('heading', { name: 'Orders' }).count()).toBe(0);

    await signIn(p, g.baseUrl, ADMIN.email, ADMIN.password);
    expect(await p.locator('.who').innerText()).toContain(ADMIN.email);
    const cookies = await p.context().cookies();
    expect(cookies.find((c) => c.name === 'hb_admin_session')).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    await p.context().close();
  });

  it('locks the account after repeated wrong passwords', async () => {
    const p = await page();
    await p.goto(`${g.baseUrl}/admin/login`);
    for (let i = 0; i < 3; i++) {
      await p.getByLabel('E-mail').fill('lou@lab.example');
      await p.getByLabel('Password').fill(`wrong-password-${i}`);
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.getByRole('alert').waitFor();
    }
    await expectText(p.getByRole('alert'), 'locked');
    await p.getByLabel('E-mail').fill('lou@lab.example');
    await p.getByLabel('Password').fill('lockout-password-123');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await expectText(p.getByRole('alert'), 'locked');
    expect(await p.getByRole('heading', { name: 'Orders' }).count()).toBe(0);
    await p.context().close();
  });

  it('shows orders created and changed during the test without a reload', async () => {
    const p = await page();
    await signIn(p, g.baseUrl, ADMIN.email, ADMIN.password);
    await orderRow(p, seeded.filler).waitFor();
    await p.evaluate(() => ((window as unknown as { __noReload: number }).__noReload = 42));

    const id = await insertOrder(g.ds, { filler: 'F-LIVE-1', placer: 'PL-LIVE-1', status: 'received' });
    await orderRow(p, 'F-LIVE-1').waitFor({ timeout: 10_000 });
    await expectText(orderRow(p, 'F-LIVE-1').locator('.chip'), 'received');

    await g.ds.query(`UPDATE orders SET status = 'processing', hemato_progress = 0.4 WHERE id = $1`, [id]);
    await expectText(orderRow(p, 'F-LIVE-1').locator('.chip'), 'processing');
    expect(await orderRow(p, 'F-LIVE-1').getByRole('progressbar').getAttribute('aria-valuenow')).toBe('40');
    expect(await p.evaluate(() => (window as unknown as { __noReload?: number }).__noReload)).toBe(42);

    // The status chips count what is in the database.
    await expectText(p.getByRole('button', { name: /^processing/ }).locator('.count'), '1');

    for (let i = 0; i < 6; i++) {
      await insertOrder(g.ds, {
        filler: `F-SHOT-${i}`,
        placer: `PL-SHOT-${i}`,
        status: ['failed', 'delivering', 'awaiting_images'][i % 3]!,
      });
    }
    await orderRow(p, 'F-SHOT-5').waitFor({ timeout: 10_000 });

    await p.getByLabel('Search').fill('PL-LIVE');
    await p.getByRole('button', { name: 'Search' }).click();
    await p.waitForFunction(() => document.querySelectorAll('table.orders tbody tr[data-order-id]').length === 1);
    expect(await orderRow(p, 'F-LIVE-1').count()).toBe(1);
    await p.getByRole('button', { name: 'Clear' }).click();
    await orderRow(p, 'F-SHOT-5').waitFor();
    await screenshot(p, 'order-list');
    await p.context().close();
  });

  it("finds a patient's orders by MRN (a viewer, audited, the MRN never in the URL or the audit log)", async () => {
    const p = await page();
    await signIn(p, g.baseUrl, VIEWER.email, VIEWER.password);
    await orderRow(p, seeded.filler).waitFor();
    const other = await insertOrder(g.ds, { filler: 'F-OTHER-PATIENT', status: 'processing' });
    await orderRow(p, 'F-OTHER-PATIENT').waitFor({ timeout: 10_000 });

    // Authority as staff type it (case and spaces do not matter), the MRN as the order carried it.
    await p.getByLabel('Assigning authority').fill(' hosp');
    await p.getByLabel('Patient identifier').fill(PATIENT.mrn);
    await p.getByRole('button', { name: 'Find patient' }).click();
    await p.waitForFunction(() => document.querySelectorAll('table.orders tbody tr[data-order-id]').length === 1);
    expect(await orderRow(p, seeded.filler).count()).toBe(1);
    expect(await p.locator(`tr[data-order-id="${other}"]`).count()).toBe(0);
    expect(p.url()).not.toContain(PATIENT.mrn);
    expect(await p.getByLabel('Patient identifier').inputValue()).toBe('');

    await p.getByLabel('Patient identifier').fill('MRN-NOBODY');
    await p.getByRole('button', { name: 'Find patient' }).click();
    await expectText(p.getByRole('alert').filter({ hasText: 'No patient' }), 'No patient with this identifier');

    const audit: Array<{ target_type: string; target_id: string | null; detail: { found: boolean } }> =
      await g.ds.query(
        `SELECT target_type, target_id, detail FROM audit_log WHERE user_email = $1 AND action = 'patient.lookup' ORDER BY id`,
        [VIEWER.email],
      );
    expect(audit.map((a) => a.detail.found)).toEqual([true, false]);
    expect(audit[0]!.target_id).toMatch(/\S/);
    const leaks: Array<{ n: string }> = await g.ds.query(
      `SELECT count(*) AS n FROM audit_log WHERE audit_log::text LIKE '%' || $1 || '%' OR audit_log::text LIKE '%MRN-NOBODY%'`,
      [PATIENT.mrn],
    );
    expect(Number(leaks[0]!.n)).toBe(0);
    await p.context().close();
  });

  it('shows the order: timeline, B50 diagnosis, the heat map over the image, deliveries, masked patient', async () => {
    const p = await page();
    await signIn(p, g.baseUrl, ADMIN.email, ADMIN.password);
    await openOrder(p, g.baseUrl, seeded.orderId);

    const timeline = p.locator('table.timeline tbody tr');
    expect(await timeline.count()).toBe(9);
    await expectText(timeline.last(), 'completed');
    // A failed try of a step reads as words, not JSON.
    await expectText(
      p.locator('table.timeline tbody tr', { hasText: 'step retry' }),
      'orders.create-study: try 2 of 8 failed: Hemato.AI POST /pbs: 503 service unavailable; next try in 8 s',
    );

    const b50 = p.locator('table.diagnoses tbody tr', { has: p.getByText('B50', { exact: true }) });
    await expectText(b50, 'Plasmodium falciparum malaria');
    await expectText(b50, '91%');
    await expectText(p.locator('.pathology'), 'Ring forms');

    // Every spot of the report is a circle, drawn where the report says on the displayed image.
    const img = p.locator('figure.smear img');
    await p.waitForFunction(() => {
      const i = document.querySelector('figure.smear img') as HTMLImageElement | null;
      return !!i && i.complete && i.naturalWidth > 0 && document.querySelectorAll('circle.heat-spot').length > 0;
    });
    const circles = p.locator('circle.heat-spot');
    expect(await circles.count()).toBe(seeded.spots.length);
    const box = (await img.boundingBox())!;
    const scale = box.width / seeded.width;
    for (let i = 0; i < seeded.spots.length; i++) {
      const c = (await circles.nth(i).boundingBox())!;
      const s = seeded.spots[i]!;
      expect(Math.abs(c.x + c.width / 2 - (box.x + s.x * scale))).toBeLessThan(3);
      expect(Math.abs(c.y + c.height / 2 - (box.y + s.y * scale))).toBeLessThan(3);
      expect(Math.abs(c.width / 2 - s.r * scale)).toBeLessThan(3);
    }

    await expectText(p.locator('[data-delivery-target="hl7"]'), 'acknowledged');
    await expectText(p.locator('[data-delivery-target="fhir"]'), 'failed');
    await p.locator('[data-delivery-target="fhir"] summary').click();
    await expectText(p.locator('[data-delivery-target="fhir"] pre'), 'OperationOutcome');

    // Masked by default: neither the page nor the raw message shows the patient's name.
    const body = await p.locator('main').innerText();
    expect(body).not.toContain(PATIENT.family);
    expect(body).not.toContain(PATIENT.mrn);
    await expectText(p.getByTestId('inbound-raw'), 'ORM^O01');
    await screenshot(p, 'order-page');
    await p.context().close();
  });

  it('lets an admin reveal the patient, and writes the reveal to the audit log', async () => {
    const p = await page();
    await signIn(p, g.baseUrl, ADMIN.email, ADMIN.password);
    await openOrder(p, g.baseUrl, seeded.orderId);
    const before: Array<{ n: string }> = await g.ds.query(
      `SELECT count(*) AS n FROM audit_log WHERE action = 'patient.reveal'`,
    );
    expect(Number(before[0]!.n)).toBe(0);

    await p.getByRole('button', { name: 'Reveal patient' }).click();
    await p.getByRole('dialog').getByRole('button', { name: 'Reveal' }).click();
    await expectText(p.getByTestId('patient-name'), `${PATIENT.given[0]} ${PATIENT.family}`);
    await expectText(p.getByTestId('inbound-raw'), `${PATIENT.family}^${PATIENT.given[0]}`);

    const rows: Array<{ user_email: string; target_type: string; target_id: string; outcome: string }> =
      await g.ds.query(
        `SELECT user_email, target_type, target_id, outcome FROM audit_log WHERE action = 'patient.reveal'`,
      );
    expect(rows).toEqual([{ user_email: ADMIN.email, target_type: 'order', target_id: seeded.orderId, outcome: 'ok' }]);

    // The audit page shows it too.
    await p.getByRole('link', { name: 'Audit log' }).click();
    await expectText(p.locator('table.audit tbody tr', { hasText: 'patient.reveal' }).first(), ADMIN.email);
    await p.context().close();
  });

  it('does not let a viewer retry: no button, and the API answers 403', async () => {
    const failedId = await insertOrder(g.ds, {
      filler: 'F-FAILED-1',
      status: 'failed',
      failedStep: 'upload',
      failureReason: 'Hemato.AI answered 503',
    });
    const admin = await page();
    await signIn(admin, g.baseUrl, ADMIN.email, ADMIN.password);
    await openOrder(admin, g.baseUrl, failedId);
    // The admin sees the action (so its absence for the viewer means something).
    await admin.getByRole('button', { name: 'Retry failed step' }).waitFor();
    await admin.context().close();

    const p = await page();
    await signIn(p, g.baseUrl, VIEWER.email, VIEWER.password);
    await openOrder(p, g.baseUrl, failedId);
    await expectText(p.locator('.error[role="note"]'), 'Hemato.AI answered 503');
    expect(await p.getByRole('button', { name: 'Retry failed step' }).count()).toBe(0);
    expect(await p.getByRole('button', { name: 'Reveal patient' }).count()).toBe(0);
    const status = await p.evaluate(async (id) => {
      const r = await fetch(`/api/admin/orders/${id}/actions/retry`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      return r.status;
    }, failedId);
    expect(status).toBe(403);
    const denied: Array<{ n: string }> = await g.ds.query(
      `SELECT count(*) AS n FROM audit_log WHERE user_email = $1 AND action = 'access.denied'`,
      [VIEWER.email],
    );
    expect(Number(denied[0]!.n)).toBe(1);
    await p.context().close();
  });

  it('shows the health page: stores, queues, heartbeat, last errors', async () => {
    const p = await page();
    await signIn(p, g.baseUrl, ADMIN.email, ADMIN.password);
    await p.getByRole('link', { name: 'Health' }).click();
    await p.getByRole('heading', { name: 'Queues' }).waitFor();
    for (const q of ['orders', 'deliveries', 'maintenance']) await p.locator(`tr[data-queue="${q}"]`).waitFor();
    await expectText(
      p.locator('.card', { has: p.getByRole('heading', { name: 'Database and queue store' }) }),
      'postgres',
    );
    await expectText(p.locator('.card', { has: p.getByRole('heading', { name: 'Last errors' }) }), 'F-FAILED-1');
    // The MLLP listener counts a connection opened now (the page refreshes every 5 s).
    const mllpPort = await p.evaluate(async () => {
      const h = (await (await fetch('/api/admin/health')).json()) as { mllp: { stats: { port: number } | null } };
      return h.mllp.stats?.port ?? 0;
    });
    expect(mllpPort).toBeGreaterThan(0);
    const mllp = p.locator('.card', { has: p.getByRole('heading', { name: 'MLLP listener' }) });
    await expectText(mllp, '0 open connections');
    const socket = connect(mllpPort, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    await expectText(mllp, '1 open connection', 15_000);
    await expectText(mllp, '0 B of unfinished frames (limit 256 MiB)');
    // A peer that starts a frame and stops: what it holds shows (a stuck sender is found here).
    socket.write(Buffer.concat([Buffer.from([0x0b]), Buffer.alloc(100 * 1024, 'x')]));
    await p.waitForFunction(
      () => /[1-9][\d.]* KiB of unfinished frames/.test(document.querySelector('.mllp-memory')?.textContent ?? ''),
      undefined,
      { timeout: 15_000 },
    );
    expect(await mllp.locator('.mllp-memory').innerText()).toContain('0 B of messages being handled (limit 128 MiB)');
    socket.destroy();

    const heartbeat = p.locator('.card', { has: p.getByRole('heading', { name: 'Hemato.AI heartbeat' }) });
    await expectText(heartbeat, 'up');
    await expectText(heartbeat, 'version 9.8.7');
    await expectText(p.locator('.card', { has: p.getByRole('heading', { name: 'EHR (FHIR)' }) }), 'HTTP 200');

    // And when a peer stops answering, the page says so on its next refresh.
    await new Promise((r) => peers.close(r));
    peers.closeAllConnections();
    await expectText(heartbeat, 'down', 15_000);
    // Why, in words an operator can act on (not fetch's "fetch failed").
    await expectText(heartbeat, 'ECONNREFUSED');
    expect(await heartbeat.innerText()).not.toContain('fetch failed');
    await screenshot(p, 'health-page');
    await p.context().close();
  });

  // Last: it erases the seeded patient's identity, which the tests above reveal.
  it('shows what retention erased: the inbound message and the patient identity, the rest of the order kept', async () => {
    const purged = await seedReportedOrder(g.ds, g.config, 'F-PURGED-1');
    await g.ds.query(
      `UPDATE orders SET status_changed_at = now() - interval '40 days' WHERE filler_order_number IN ('F-PURGED-1', $1)`,
      [seeded.filler],
    );
    await g.ds.query(`UPDATE patient_proxies SET updated_at = now() - interval '40 days'`);
    const retention = new RetentionService(g.ds, g.config);
    const done = await retention.purge();
    expect(done).toMatchObject({ orders: 2, patientIdentities: 1 });

    const p = await page();
    await signIn(p, g.baseUrl, ADMIN.email, ADMIN.password);
    await openOrder(p, g.baseUrl, purged.orderId);
    await expectText(p.getByTestId('inbound-erased'), 'Erased under the retention policy');
    await expectText(p.getByTestId('patient-erased'), 'Identity erased under the retention policy');
    expect(await p.getByTestId('inbound-raw').count()).toBe(0);
    expect(await p.getByRole('button', { name: 'Reveal patient' }).count()).toBe(0);
    // The result is still there.
    await expectText(p.locator('body'), 'B50');
    expect(await p.locator('body').innerText()).not.toContain(PATIENT.family);
    // The health page says what the policy is and what it last erased (from the audit log).
    await p.getByRole('link', { name: 'Health' }).click();
    await expectText(p.getByTestId('retention-policy'), 'erased 30 days after an order finished');
    await expectText(p.getByTestId('retention-last'), '2 orders, 2 inbound messages, 1 patient identities');
    await p.context().close();
  });
});

/** Waits (up to 10 s) until the element's text contains `text`; fails with what it saw. */
async function expectText(locator: import('playwright-core').Locator, text: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seen = '';
  while (Date.now() < deadline) {
    seen = (await locator.innerText({ timeout: 10_000 }).catch(() => '')) ?? '';
    if (seen.includes(text)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(seen).toContain(text);
}
