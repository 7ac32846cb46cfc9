import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MessageSealer } from '@hemato/privacy';
import type { Browser, Page } from 'playwright-core';
import { RawMllpConnection, ackOf } from '../hl7/support/mllp-test-client';
import { orderMessage } from '../hl7/support/fixtures';
import { migratedDatabase, startGateway, type TestGateway } from '../hl7/support/gateway';
import { apiSignIn, createUser, launchChromium, newContext, screenshot, signIn } from './dashboard-harness';

jest.setTimeout(90_000);

const ADMIN = { email: 'replay-admin@lab.example', password: 'admin-password-123' };
const VIEWER = { email: 'replay-viewer@lab.example', password: 'viewer-password-123' };

/**
 * Replaying a refused HL7 message from the Health page: the message was answered AE (its test code was not
 * mapped), the code is mapped and the gateway restarted, an admin replays it and its order is made under the
 * same inbound message, whose stored ACK becomes AA (so the sender's resend is answered AA, with no second order).
 */
describe('replay of a refused HL7 message', () => {
  let databaseUrl: string;
  let gw: TestGateway;
  let browser: Browser;
  const imageDir = mkdtempSync(path.join(os.tmpdir(), 'hl7-replay-img-'));
  // The same keys across the restart (testEnv makes new ones each time): the stored messages are sealed with them.
  const keys = {
    PHI_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    PHI_HMAC_KEY: randomBytes(32).toString('hex'),
  };
  const env = (codes: string) => ({ IMAGE_DIR: imageDir, HEMATO_ORDER_CODES: codes, ...keys });

  const inbound = async (controlId: string) =>
    (await gw.db.query(`SELECT * FROM inbound_messages WHERE control_id = $1`, [controlId]))[0] as Record<string, any>;
  const ordersOf = (placer: string) =>
    gw.db.query(`SELECT * FROM orders WHERE placer_order_number = $1`, [placer]) as Promise<Array<Record<string, any>>>;
  const api = async (cookie: string, p: string, method = 'POST') => {
    const res = await fetch(`${gw.gateway.urls.http}${p}`, {
      method,
      headers: { cookie, 'content-type': 'application/json' },
      body: method === 'POST' ? '{}' : undefined,
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as any };
  };

  beforeAll(async () => {
    databaseUrl = await migratedDatabase();
    // First run: only the smear code is mapped.
    gw = await startGateway(env('LN|34994-4=pbs_v1'), { databaseUrl });
    const conn = await RawMllpConnection.open(gw.mllpPort);
    try {
      const unmapped = ackOf(
        await conn.request(
          orderMessage({ controlId: 'RP-UNMAPPED', groups: [{ placer: 'PL-RP-1', code: '57021-8' }] }),
        ),
      );
      expect(unmapped.code).toBe('AE');
      expect(unmapped.errors.join(' ')).toMatch(/57021-8/);
      const early = ackOf(
        await conn.request(
          orderMessage({ controlId: 'RP-EARLY-CA', groups: [{ control: 'CA', placer: 'PL-RP-LATE' }] }),
        ),
      );
      expect(early.code).toBe('AE');
      expect(ackOf(await conn.request(orderMessage({ controlId: 'RP-OK' }))).code).toBe('AA');
    } finally {
      conn.close();
    }
    await gw.close();
    // The admin maps the code and restarts the gateway on the same database.
    gw = await startGateway(env('LN|34994-4=pbs_v1,LN|57021-8=pbs_v1+cbc_v1'), { databaseUrl });
    await createUser(gw.db, ADMIN.email, 'admin', ADMIN.password);
    await createUser(gw.db, VIEWER.email, 'viewer', VIEWER.password);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await gw?.close();
  });

  it('makes the order from the Health page, stores AA for the message, and the sender’s resend gets AA without a second order', async () => {
    expect(await ordersOf('PL-RP-1')).toHaveLength(0);
    const page: Page = await (await newContext(browser)).newPage();
    await signIn(page, gw.gateway.urls.http, ADMIN.email, ADMIN.password);
    await page.goto(`${gw.gateway.urls.http}/admin/health`);
    const button = page.getByRole('button', { name: 'Replay RP-UNMAPPED' });
    await button.waitFor();
    // Opened straight on the Health page, the header's live-updates mark still connects.
    await page.getByText('● live').waitFor();
    // Accepted messages are not listed; the refused cancellation is, with its own button.
    await page.getByRole('button', { name: 'Replay RP-EARLY-CA' }).waitFor();
    expect(await page.getByRole('button', { name: 'Replay RP-OK' }).count()).toBe(0);
    // "Did you get RP-OK?": found by its control id whatever became of it (accepted: nothing to replay).
    await page.getByLabel('Control id (MSH-10 or FHIR request id)').fill('RP-OK');
    await page.getByRole('button', { name: 'Find' }).click();
    const found = page.getByRole('region', { name: 'Found messages' });
    await found.getByRole('button', { name: 'View RP-OK' }).waitFor();
    expect(await found.innerText()).toMatch(/LIS\|GENHOSP RP-OK\s+hl7 ORM\^O01 · accepted AA/);
    expect(await found.getByRole('button', { name: 'Replay RP-OK' }).count()).toBe(0);
    await page.getByLabel('Control id (MSH-10 or FHIR request id)').fill('NO-SUCH-ID');
    await page.getByRole('button', { name: 'Find' }).click();
    await found.getByText('No message with control id NO-SUCH-ID.').waitFor();

    // What was refused and what we answered, the patient masked.
    await page.getByRole('button', { name: 'View RP-UNMAPPED' }).click();
    const shown = page.getByRole('region', { name: 'Message RP-UNMAPPED' });
    await shown.waitFor();
    const text = await shown.innerText();
    expect(text).toContain('OBR|1|PL-RP-1||57021-8');
    expect(text).toMatch(/MSA\|AE\|RP-UNMAPPED/);
    expect(text).not.toMatch(/TESTPATIENT|MRN0001|19700102/);
    expect(
      await gw.db.query(`SELECT count(*)::int AS n FROM audit_log WHERE action = 'inbound.view' AND user_email = $1`, [
        ADMIN.email,
      ]),
    ).toEqual([{ n: 1 }]);
    await button.click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('The sender is not sent anything').waitFor();
    await dialog.getByRole('button', { name: 'Replay' }).click();
    const status = page.getByRole('status');
    await status.waitFor();
    const said = await status.innerText();
    await screenshot(page, 'health-replay');
    expect(said).toMatch(/^Replayed: 1 order created \(HB\d{12}\)$/);

    const orders = await ordersOf('PL-RP-1');
    expect(orders).toHaveLength(1);
    expect(orders[0]!.tasks).toEqual(['pbs_v1', 'cbc_v1']);
    expect(said).toContain(orders[0]!.filler_order_number);
    const row = await inbound('RP-UNMAPPED');
    expect(orders[0]!.inbound_message_id).toBe(row.id);
    expect(row.status).toBe('accepted');
    expect(row.ack_code).toBe('AA');
    expect(row.error).toBeNull();
    const events = await gw.db.query(`SELECT actor FROM order_events WHERE order_id = $1`, [orders[0]!.id]);
    expect(events.map((e: { actor: string }) => e.actor)).toContain(`admin:${ADMIN.email}`);
    const audit = await gw.db.query(
      `SELECT user_email, target_id, outcome FROM audit_log WHERE action = 'inbound.replay' AND target_id = $1`,
      [row.id],
    );
    expect(audit).toEqual([expect.objectContaining({ user_email: ADMIN.email, target_id: row.id })]);
    // The message leaves the refused list.
    await page.getByRole('button', { name: 'Replay RP-UNMAPPED' }).waitFor({ state: 'detached', timeout: 15_000 });

    // The sender resends the same message: the stored (new) ACK, sealed at rest, and no second order.
    const conn = await RawMllpConnection.open(gw.mllpPort);
    try {
      const resent = await conn.request(
        orderMessage({ controlId: 'RP-UNMAPPED', groups: [{ placer: 'PL-RP-1', code: '57021-8' }] }),
      );
      expect(ackOf(resent).code).toBe('AA');
      expect(gw.gateway.app.get(MessageSealer, { strict: false }).open(row.ack)).toBe(resent);
    } finally {
      conn.close();
    }
    expect(await ordersOf('PL-RP-1')).toHaveLength(1);
  });

  it('says why when a message cannot be replayed: accepted, still refused, a FHIR request, a viewer', async () => {
    const admin = (await apiSignIn(gw.gateway.urls.http, ADMIN.email, ADMIN.password)).cookie!;
    const ok = await inbound('RP-OK');
    const again = await api(admin, `/api/admin/inbound/${ok.id}/replay`);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({
      ok: false,
      message: expect.stringMatching(/accepted and its orders exist/),
    });
    expect(await ordersOf('PL-RP-OK')).toHaveLength(1);

    // The cancellation came before its order: still nothing to cancel.
    const early = await inbound('RP-EARLY-CA');
    const still = await api(admin, `/api/admin/inbound/${early.id}/replay`);
    expect(still.body.ok).toBe(false);
    expect(still.body.message).toMatch(/^Still refused: 204 No order with placer number PL-RP-LATE/);
    expect((await inbound('RP-EARLY-CA')).status).toBe('rejected');

    const viewer = (await apiSignIn(gw.gateway.urls.http, VIEWER.email, VIEWER.password)).cookie!;
    expect((await api(viewer, `/api/admin/inbound/${early.id}/replay`)).status).toBe(403);

    const fhir: Array<{ id: string }> = await gw.db.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, message_type, raw, status, error)
       VALUES ('fhir', 'ehr', 'req-1', 'ServiceRequest', '{}', 'rejected', 'no code') RETURNING id`,
    );
    const refused = await api(admin, `/api/admin/inbound/${fhir[0]!.id}/replay`);
    expect(refused.body).toEqual({
      ok: false,
      message: expect.stringMatching(/FHIR request is answered when it is made/),
    });

    // Found by control id over the API too; without one, a 400 that says what to send.
    const byId = await api(admin, `/api/admin/inbound?controlId=RP-EARLY-CA`, 'GET');
    expect(byId.body.messages).toEqual([
      expect.objectContaining({ id: early.id, control_id: 'RP-EARLY-CA', status: 'rejected', ack_code: 'AE' }),
    ]);
    expect(JSON.stringify(byId.body)).not.toMatch(/TESTPATIENT|MRN0001/);
    const noId = await api(admin, `/api/admin/inbound`, 'GET');
    expect(noId.status).toBe(400);
    expect(noId.body.message).toMatch(/controlId is required/);

    const missing = await api(admin, `/api/admin/inbound/00000000-0000-4000-8000-000000000000/replay`);
    expect(missing.body).toEqual({ ok: false, message: 'Inbound message not found' });
  });

  it('replays a cancellation once its order has arrived: the order is cancelled', async () => {
    const conn = await RawMllpConnection.open(gw.mllpPort);
    try {
      const nw = orderMessage({ controlId: 'RP-LATE-NW', groups: [{ placer: 'PL-RP-LATE' }] });
      expect(ackOf(await conn.request(nw)).code).toBe('AA');
    } finally {
      conn.close();
    }
    const admin = (await apiSignIn(gw.gateway.urls.http, ADMIN.email, ADMIN.password)).cookie!;
    const early = await inbound('RP-EARLY-CA');
    const done = await api(admin, `/api/admin/inbound/${early.id}/replay`);
    expect(done.body).toEqual({ ok: true, message: 'Replayed: 1 order cancelled' });
    const [order] = await ordersOf('PL-RP-LATE');
    expect(order!.status).toBe('cancelled');
    expect((await inbound('RP-EARLY-CA')).ack_code).toBe('AA');
  });
});
