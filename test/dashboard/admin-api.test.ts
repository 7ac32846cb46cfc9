import { PatientProxyService } from '@hemato/privacy';
import { apiSignIn, createUser, insertOrder, startDashboardGateway, type DashboardGateway } from './dashboard-harness';

/** The admin API over real HTTP: sign-in, lock-out, roles, search and pagination, the audit log. */
describe('admin API', () => {
  let g: DashboardGateway;
  beforeAll(async () => {
    g = await startDashboardGateway('adminapi', { ADMIN_LOCKOUT_THRESHOLD: '3' });
    await createUser(g.ds, 'ada@lab.example', 'admin', 'admin-password-123');
    await createUser(g.ds, 'vic@lab.example', 'viewer', 'viewer-password-123');
    await createUser(g.ds, 'lou@lab.example', 'viewer', 'lockout-password-123');
  });
  afterAll(async () => g?.stop());

  it('refuses every admin route without a session, and signs in with the right password only', async () => {
    for (const path of ['/api/admin/orders', '/api/admin/health', '/api/admin/auth/me', '/api/admin/audit']) {
      expect((await fetch(g.baseUrl + path)).status).toBe(401);
    }
    const wrong = await apiSignIn(g.baseUrl, 'ada@lab.example', 'not-the-password');
    expect(wrong.status).toBe(401);
    expect(wrong.cookie).toBeNull();
    const unknown = await apiSignIn(g.baseUrl, 'nobody@lab.example', 'whatever-password');
    expect(unknown.status).toBe(401);

    const ok = await apiSignIn(g.baseUrl, 'ADA@lab.example', 'admin-password-123');
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ email: 'ada@lab.example', role: 'admin' });
    const me = await fetch(g.baseUrl + '/api/admin/auth/me', { headers: { cookie: ok.cookie! } });
    expect(await me.json()).toMatchObject({ email: 'ada@lab.example', role: 'admin' });

    const logout = await fetch(g.baseUrl + '/api/admin/auth/logout', {
      method: 'POST',
      headers: { cookie: ok.cookie! },
    });
    expect(logout.status).toBe(204);
    expect((await fetch(g.baseUrl + '/api/admin/auth/me', { headers: { cookie: ok.cookie! } })).status).toBe(401);
  });

  it('streams live changes: the events stream names every order a statement changed', async () => {
    const { cookie } = await apiSignIn(g.baseUrl, 'ada@lab.example', 'admin-password-123');
    const stream = new AbortController();
    const res = await fetch(`${g.baseUrl}/api/admin/events`, { headers: { cookie: cookie! }, signal: stream.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const named = new Set<string>();
    const reading = (async () => {
      const decoder = new TextDecoder();
      let text = '';
      try {
        for await (const chunk of res.body!) {
          text += decoder.decode(chunk as Uint8Array, { stream: true });
          const events = text.split('\n\n');
          text = events.pop()!;
          for (const ev of events) {
            const data = ev.split('\n').find((l) => l.startsWith('data:'));
            if (/^event: ?orders/m.test(ev) && data) {
              for (const id of (JSON.parse(data.slice(5)) as { ids: string[] }).ids) named.add(id);
            }
          }
        }
      } catch {
        // aborted at the end of the test
      }
    })();
    // The listener is subscribed once the stream is open; 150 orders in one statement, as a group commit writes them.
    await new Promise((r) => setTimeout(r, 300));
    const made: Array<{ id: string }> = await g.ds.query(
      `INSERT INTO orders (status, source_channel, filler_order_number)
       SELECT 'received', 'hl7', 'LIVE-' || n FROM generate_series(1, 150) n RETURNING id`,
    );
    for (let i = 0; i < 100 && made.some((m) => !named.has(m.id)); i++) await new Promise((r) => setTimeout(r, 50));
    stream.abort();
    await reading;
    expect(made.filter((m) => !named.has(m.id))).toEqual([]);
  });

  it('sets the session cookie HttpOnly and SameSite=Strict', async () => {
    const res = await fetch(`${g.baseUrl}/api/admin/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'vic@lab.example', password: 'viewer-password-123' }),
    });
    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Strict/i);
  });

  it('locks an account after repeated failures, even against the right password, and audits it', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await apiSignIn(g.baseUrl, 'lou@lab.example', `wrong-${i}-password`);
      expect(r.status).toBe(i < 2 ? 401 : 423);
    }
    const right = await apiSignIn(g.baseUrl, 'lou@lab.example', 'lockout-password-123');
    expect(right.status).toBe(423);
    expect(right.cookie).toBeNull();
    const rows: Array<{ action: string; outcome: string }> = await g.ds.query(
      `SELECT action, outcome FROM audit_log WHERE user_email = 'lou@lab.example' ORDER BY id`,
    );
    expect(rows.map((r) => r.action)).toContain('auth.lockout');
    expect(rows[rows.length - 1]).toEqual({ action: 'auth.login', outcome: 'denied' });
  });

  it('lets a viewer read but not act: reveal and audit answer 403 and the refusal is audited', async () => {
    const orderId = await insertOrder(g.ds, { filler: 'VIEW-1', placer: 'PL-VIEW-1' });
    const viewer = await apiSignIn(g.baseUrl, 'vic@lab.example', 'viewer-password-123');
    const headers = { cookie: viewer.cookie! };
    expect((await fetch(`${g.baseUrl}/api/admin/orders/${orderId}`, { headers })).status).toBe(200);
    expect((await fetch(`${g.baseUrl}/api/admin/orders/${orderId}/reveal`, { method: 'POST', headers })).status).toBe(
      403,
    );
    expect((await fetch(`${g.baseUrl}/api/admin/audit`, { headers })).status).toBe(403);
    const denied: Array<{ n: string }> = await g.ds.query(
      `SELECT count(*) AS n FROM audit_log WHERE user_email = 'vic@lab.example' AND action = 'access.denied' AND outcome = 'denied'`,
    );
    expect(Number(denied[0]!.n)).toBe(2);
    const views: Array<{ target_id: string }> = await g.ds.query(
      `SELECT target_id FROM audit_log WHERE user_email = 'vic@lab.example' AND action = 'order.view'`,
    );
    expect(views.map((v) => v.target_id)).toEqual([orderId]);
  });

  it('refuses a state-changing call from another origin', async () => {
    const admin = await apiSignIn(g.baseUrl, 'ada@lab.example', 'admin-password-123');
    const orderId = await insertOrder(g.ds, { filler: 'CSRF-1' });
    const res = await fetch(`${g.baseUrl}/api/admin/orders/${orderId}/reveal`, {
      method: 'POST',
      headers: { cookie: admin.cookie!, origin: 'https://evil.example' },
    });
    expect(res.status).toBe(403);
  });

  it('lists newest first with keyset pages, filters by status and finds by placer / filler prefix', async () => {
    const admin = await apiSignIn(g.baseUrl, 'ada@lab.example', 'admin-password-123');
    const headers = { cookie: admin.cookie! };
    const made: string[] = [];
    for (let i = 0; i < 7; i++) {
      made.push(
        await insertOrder(g.ds, {
          filler: `PAGE-${i}`,
          placer: `PL-PAGE-${i}`,
          status: i % 2 ? 'failed' : 'processing',
        }),
      );
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `${g.baseUrl}/api/admin/orders?q=PAGE-&limit=3${cursor ? `&cursor=${cursor}` : ''}`;
      const page: { items: Array<{ id: string }>; nextCursor: string | null } = await (
        await fetch(url, { headers })
      ).json();
      seen.push(...page.items.map((o) => o.id));
      cursor = page.nextCursor;
    } while (cursor && seen.length < 50);
    expect(seen).toEqual([...made].reverse());

    const failed = await (await fetch(`${g.baseUrl}/api/admin/orders?status=failed&q=PL-PAGE`, { headers })).json();
    expect(failed.items.map((o: { fillerOrderNumber: string }) => o.fillerOrderNumber)).toEqual([
      'PAGE-5',
      'PAGE-3',
      'PAGE-1',
    ]);
    const exact = await (await fetch(`${g.baseUrl}/api/admin/orders?q=PAGE-4`, { headers })).json();
    expect(exact.items.map((o: { id: string }) => o.id)).toEqual([made[4]]);
    const counts = await (await fetch(`${g.baseUrl}/api/admin/orders/counts?q=PAGE-`, { headers })).json();
    expect(counts).toEqual({ counts: { failed: 3, processing: 4 }, total: 7 });
    expect((await fetch(`${g.baseUrl}/api/admin/orders?status=bogus`, { headers })).status).toBe(400);
  });

  it('looks a patient up by assigning authority and MRN: the proxy id only, 404 when unknown, 400 without both', async () => {
    const proxy = await new PatientProxyService(g.config).resolve(g.ds.manager, {
      primary: { authority: 'GENHOSP', value: 'MRN-API-LOOKUP' },
      identifiers: [{ authority: 'GENHOSP', value: 'MRN-API-LOOKUP', type: 'MR' }],
    });
    const orderId = await insertOrder(g.ds, { filler: 'LOOKUP-1', proxyRowId: proxy.id });
    const viewer = await apiSignIn(g.baseUrl, 'vic@lab.example', 'viewer-password-123');
    const post = (body: unknown) =>
      fetch(`${g.baseUrl}/api/admin/patients/lookup`, {
        method: 'POST',
        headers: { cookie: viewer.cookie!, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const found = await post({ authority: 'genhosp', identifier: ' MRN-API-LOOKUP ' });
    expect(found.status).toBe(200);
    const { proxyId } = (await found.json()) as { proxyId: string };
    expect(proxyId).toBe(proxy.proxyId);
    const list = await (
      await fetch(`${g.baseUrl}/api/admin/orders?q=${encodeURIComponent(proxyId)}`, {
        headers: { cookie: viewer.cookie! },
      })
    ).json();
    expect(list.items.map((o: { id: string }) => o.id)).toEqual([orderId]);

    const unknown = await post({ authority: 'GENHOSP', identifier: 'MRN-NOT-HERE' });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).message).toMatch(/No patient with this identifier/);
    // The same MRN under another authority is another patient.
    expect((await post({ authority: 'OTHERHOSP', identifier: 'MRN-API-LOOKUP' })).status).toBe(404);
    const missing = await post({ authority: 'GENHOSP' });
    expect(missing.status).toBe(400);
    expect((await missing.json()).message).toMatch(/identifier is required/);
    expect((await post({ authority: 'GENHOSP', identifier: 'x'.repeat(201) })).status).toBe(400);
    expect((await fetch(`${g.baseUrl}/api/admin/patients/lookup`, { method: 'POST', body: '{}' })).status).toBe(401);
  });

  it('filters by channel and by date range', async () => {
    const admin = await apiSignIn(g.baseUrl, 'ada@lab.example', 'admin-password-123');
    const headers = { cookie: admin.cookie! };
    const old = await insertOrder(g.ds, { filler: 'DATE-OLD', channel: 'fhir' });
    const mid = await insertOrder(g.ds, { filler: 'DATE-MID', channel: 'hl7' });
    await insertOrder(g.ds, { filler: 'DATE-NEW', channel: 'fhir' });
    await g.ds.query(`UPDATE orders SET created_at = '2025-01-10T12:00:00Z' WHERE id = $1`, [old]);
    await g.ds.query(`UPDATE orders SET created_at = '2025-02-10T12:00:00Z' WHERE id = $1`, [mid]);
    const fillers = async (qs: string) =>
      (
        (await (await fetch(`${g.baseUrl}/api/admin/orders?q=DATE-&${qs}`, { headers })).json()).items as Array<{
          fillerOrderNumber: string;
        }>
      ).map((o) => o.fillerOrderNumber);
    expect(await fillers('channel=fhir')).toEqual(['DATE-NEW', 'DATE-OLD']);
    expect(await fillers('from=2025-01-01&to=2025-03-01')).toEqual(['DATE-MID', 'DATE-OLD']);
    expect(await fillers('from=2025-02-01&to=2025-03-01&channel=hl7')).toEqual(['DATE-MID']);
    expect((await fetch(`${g.baseUrl}/api/admin/orders?from=yesterday`, { headers })).status).toBe(400);
  });

  it('documents the API with OpenAPI behind the same sign-in', async () => {
    expect((await fetch(`${g.baseUrl}/api/docs-json`)).status).toBe(401);
    const admin = await apiSignIn(g.baseUrl, 'ada@lab.example', 'admin-password-123');
    const doc = await (await fetch(`${g.baseUrl}/api/docs-json`, { headers: { cookie: admin.cookie! } })).json();
    const page = await fetch(`${g.baseUrl}/api/docs`, { headers: { cookie: admin.cookie! } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('swagger-ui');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/admin/auth/login',
        '/api/admin/orders',
        '/api/admin/orders/{id}',
        '/api/admin/health',
      ]),
    );
  });
});
