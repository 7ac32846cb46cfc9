import { OrderStatus } from '@hemato/common';
import { MllpClient, readAck } from '@hemato/hl7';
import { OrderActionsService } from '@hemato/orders';
import { ERASED, PatientIdentityReader, censusPhiKeys, phiCipherFromConfig, resealPhi } from '@hemato/privacy';
import {
  SAMPLE_PATIENT,
  eventually,
  generateSmear,
  orderReaches,
  phiValues,
  sampleOrm,
  startPipeline,
  type Pipeline,
  type SamplePatient,
} from '@hemato/testing';

/**
 * RETENTION_DAYS through the whole system: orders made over MLLP and completed through the sandbox, then
 * aged in the database; the worker's scheduled retention job erases what is past the period and keeps the
 * rest. A patient whose every order is purged loses her identity but keeps her proxy id when she returns.
 */
describe('retention of patient data (RETENTION_DAYS)', () => {
  let p: Pipeline;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 44, parasites: false });
  const gone: SamplePatient = {
    ...SAMPLE_PATIENT,
    mrn: 'MRN-RET-GONE',
    family: 'Erasedottir',
    given: 'Greta',
    phone: '555-0100-1111',
  };
  const staying: SamplePatient = {
    ...SAMPLE_PATIENT,
    mrn: 'MRN-RET-STAY',
    family: 'Keepsake',
    given: 'Kai',
    phone: '555-0100-2222',
  };
  const recent: SamplePatient = {
    ...SAMPLE_PATIENT,
    mrn: 'MRN-RET-NEW',
    family: 'Newcombe',
    given: 'Nia',
    phone: '555-0100-3333',
  };

  beforeAll(async () => {
    p = await startPipeline('retention', { RETENTION_DAYS: '30', RETENTION_INTERVAL_MS: '1000' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  /** Sends an order (with a note naming the patient) and answers the ACK code. */
  async function send(placer: string, patient: SamplePatient, o: { images?: boolean; code?: string } = {}) {
    const msg =
      sampleOrm({
        controlId: `C-${placer}`,
        placer,
        patient,
        code: o.code,
        images: o.images === false ? [] : [{ data: smear, subtype: 'PNG' }],
      }) + `\rNTE|1||Call ${patient.given} ${patient.family} on ${patient.phone}`;
    const ack = await client.send(msg, `C-${placer}`);
    return ack;
  }

  async function orderOf(placer: string) {
    const rows: Array<{
      id: string;
      status: string;
      purged_at: Date | null;
      details: Record<string, unknown>;
      patient_proxy_id: string;
      inbound_message_id: string;
    }> = await p.db.query(`SELECT * FROM orders WHERE placer_order_number = $1`, [placer]);
    return rows[0]!;
  }
  async function inbound(controlId: string) {
    const rows: Array<{ id: string; raw: string; ack: string | null; purged_at: Date | null; status: string }> =
      await p.db.query(`SELECT id, raw, ack, purged_at, status FROM inbound_messages WHERE control_id = $1`, [
        controlId,
      ]);
    return rows[0]!;
  }

  it('erases what is past the period, keeps what is not, and a returning patient keeps her proxy', async () => {
    expect((await send('RET-A', gone)).code).toBe('AA'); // finished long ago: goes
    expect((await send('RET-B1', staying)).code).toBe('AA'); // finished long ago, but her other order is open
    expect((await send('RET-B2', staying, { images: false })).code).toBe('AA'); // open: waits for images
    expect((await send('RET-F', recent)).code).toBe('AA'); // finished yesterday: stays
    expect((await send('RET-BAD', gone, { code: 'NOPE-1' })).code).toBe('AE'); // refused, no order
    for (const placer of ['RET-A', 'RET-B1', 'RET-F']) {
      const o = await orderOf(placer);
      await orderReaches(p.db, { id: o.id }, OrderStatus.Completed, 60_000);
    }
    expect((await orderOf('RET-B2')).status).toBe('awaiting_images');
    const a = await orderOf('RET-A');
    const proxyBefore: Array<{ proxy_id: string }> = await p.db.query(
      `SELECT proxy_id FROM patient_proxies WHERE id = $1`,
      [a.patient_proxy_id],
    );
    expect(a.details.notes).toEqual([expect.stringContaining(gone.family)]);

    // An image fetched from a URL that names the patient (as some PACS links do).
    await p.db.query(`UPDATE image_files SET source_url = $2 WHERE order_id = $1`, [
      a.id,
      `https://pacs.example/smear?mrn=${gone.mrn}`,
    ]);
    // Forty days pass for A, B1 and the refused message (the scheduled job runs every second meanwhile).
    await p.db.query(
      `UPDATE orders SET status_changed_at = now() - interval '40 days' WHERE placer_order_number IN ('RET-A', 'RET-B1')`,
    );
    await p.db.query(
      `UPDATE inbound_messages SET received_at = now() - interval '40 days'
        WHERE control_id IN ('C-RET-A', 'C-RET-B1', 'C-RET-BAD')`,
    );
    await p.db.query(`UPDATE patient_proxies SET updated_at = now() - interval '40 days'`);

    await eventually(async () => (await orderOf('RET-A')).purged_at, 20_000, 'order RET-A purged');
    await eventually(async () => (await inbound('C-RET-BAD')).purged_at, 20_000, 'the refused message erased');

    // A: the message, its ACK, the note and the identity are gone; the order, its report and timeline stay.
    const purgedA = await orderOf('RET-A');
    expect(purgedA.status).toBe('completed');
    expect(purgedA.details.notes).toBeUndefined();
    expect(purgedA.details.orderingProvider).toBeDefined();
    const urls: Array<{ source_url: string | null }> = await p.db.query(
      `SELECT source_url FROM image_files WHERE order_id = $1`,
      [purgedA.id],
    );
    expect(urls.map((u) => u.source_url)).toEqual([null]);
    const inA = await inbound('C-RET-A');
    expect(inA).toMatchObject({ raw: '', ack: null, status: 'accepted' });
    const reader = new PatientIdentityReader(p.config);
    expect(await reader.read(p.db.manager, purgedA.patient_proxy_id)).toBeNull();
    const reports: Array<{ n: string }> = await p.db.query(`SELECT count(*) AS n FROM reports WHERE order_id = $1`, [
      purgedA.id,
    ]);
    expect(Number(reports[0]!.n)).toBe(1);
    const events: Array<{ type: string; actor: string }> = await p.db.query(
      `SELECT type, actor FROM order_events WHERE order_id = $1 ORDER BY id`,
      [purgedA.id],
    );
    expect(events[events.length - 1]).toEqual({ type: 'purged', actor: 'retention' });
    // Nothing of Greta is left readable in the tables that held her: searched for every PHI value.
    for (const value of phiValues(gone).filter((v) => !Object.values(SAMPLE_PATIENT).includes(v))) {
      const hits: Array<{ n: string }> = await p.db.query(
        `SELECT (SELECT count(*) FROM orders WHERE details::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM order_events WHERE detail::text LIKE '%' || $1 || '%') AS n`,
        [value],
      );
      expect({ value, hits: Number(hits[0]!.n) }).toEqual({ value, hits: 0 });
    }

    // B1 is purged, but Kai's identity stays while B2 is open; B2's own message stays too.
    await eventually(async () => (await orderOf('RET-B1')).purged_at, 20_000, 'order RET-B1 purged');
    expect((await inbound('C-RET-B1')).raw).toBe('');
    const b2 = await orderOf('RET-B2');
    expect(b2.purged_at).toBeNull();
    expect((await reader.read(p.db.manager, b2.patient_proxy_id))?.name?.family).toBe(staying.family);
    expect((await inbound('C-RET-B2')).raw).not.toBe('');
    // F finished within the period: untouched.
    const f = await orderOf('RET-F');
    expect(f.purged_at).toBeNull();
    expect(f.details.notes).toBeDefined();
    expect((await inbound('C-RET-F')).raw).not.toBe('');
    expect((await reader.read(p.db.manager, f.patient_proxy_id))?.name?.family).toBe(recent.family);

    // The same message again: no second order, and no stored ACK to replay (it was erased with the message).
    const again = await send('RET-A', gone);
    expect(again.code).toBe('AE');
    expect(readAck(again.raw)?.errors.join('')).toMatch(/Duplicate message control id/);
    const count: Array<{ n: string }> = await p.db.query(
      `SELECT count(*) AS n FROM orders WHERE placer_order_number = 'RET-A'`,
    );
    expect(Number(count[0]!.n)).toBe(1);
    // An erased refused message cannot be replayed.
    const replay = await p.gateway.app
      .get(OrderActionsService)
      .replayInbound((await inbound('C-RET-BAD')).id, 'admin:test@lab.example');
    expect(replay).toEqual({ ok: false, message: expect.stringMatching(/erased under the retention policy/) });

    // Key rotation counts erased rows apart and leaves them alone: nothing sealed is left in them.
    const census = await censusPhiKeys(p.db);
    expect(census.patientIdentities[ERASED]).toBe(1);
    expect(census.inboundMessages[ERASED]).toBe(3);
    const resealed = await resealPhi(p.db, phiCipherFromConfig(p.config.security));
    expect(resealed.unreadable).toEqual({});
    expect((await inbound('C-RET-A')).raw).toBe('');

    // Each sweep that erased something is in the audit log, with counts only.
    const audit: Array<{ user_email: string; detail: Record<string, number> }> = await p.db.query(
      `SELECT user_email, detail FROM audit_log WHERE action = 'retention.purge' ORDER BY id`,
    );
    expect(audit.every((a) => a.user_email === 'system:retention' && a.detail.retentionDays === 30)).toBe(true);
    const sum = (k: string) => audit.reduce((n, a) => n + (a.detail[k] ?? 0), 0);
    expect({ orders: sum('orders'), inbound: sum('inboundMessages'), identities: sum('patientIdentities') }).toEqual({
      orders: 2,
      inbound: 3,
      identities: 1,
    });

    // Greta comes back: the same proxy id, and her identity is stored again for the new order's result.
    expect((await send('RET-A2', gone)).code).toBe('AA');
    const a2 = await orderOf('RET-A2');
    expect(a2.patient_proxy_id).toBe(purgedA.patient_proxy_id);
    const proxyAfter: Array<{ proxy_id: string; purged_at: Date | null }> = await p.db.query(
      `SELECT proxy_id, purged_at FROM patient_proxies WHERE id = $1`,
      [a2.patient_proxy_id],
    );
    expect(proxyAfter[0]).toEqual({ proxy_id: proxyBefore[0]!.proxy_id, purged_at: null });
    expect((await reader.read(p.db.manager, a2.patient_proxy_id))?.name?.family).toBe(gone.family);
    await orderReaches(p.db, { id: a2.id }, OrderStatus.Completed, 60_000);
  });
});
