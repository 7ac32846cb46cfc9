import { networkInterfaces } from 'node:os';
import { PatientProxyService } from '@hemato/privacy';
import { apiSignIn, createUser, insertOrder, startDashboardGateway, type DashboardGateway } from './dashboard-harness';

/** The admin API probed as an attacker would, over real HTTP: cross-site requests, caching of patient data. */
describe('admin API against cross-site requests and caches', () => {
  let g: DashboardGateway;
  let admin: string;
  beforeAll(async () => {
    g = await startDashboardGateway('httpsec');
    await createUser(g.ds, 'ada@lab.example', 'admin', 'admin-password-123');
    admin = (await apiSignIn(g.baseUrl, 'ada@lab.example', 'admin-password-123')).cookie!;
  });
  afterAll(async () => g?.stop());

  const reveals = async (orderId: string): Promise<number> => {
    const rows: Array<{ n: string }> = await g.ds.query(
      `SELECT count(*) AS n FROM audit_log WHERE action = 'patient.reveal' AND target_id = $1`,
      [orderId],
    );
    return Number(rows[0]!.n);
  };

  it('refuses a state-changing call with Origin: null, a cross-site Referer or Sec-Fetch-Site: cross-site', async () => {
    const orderId = await insertOrder(g.ds, { filler: 'XSITE-1' });
    const post = (headers: Record<string, string>) =>
      fetch(`${g.baseUrl}/api/admin/orders/${orderId}/reveal`, {
        method: 'POST',
        headers: { cookie: admin, ...headers },
      });
    // A sandboxed iframe or a data: page posts with Origin: null; an old browser or a privacy setting may send
    // no Origin at all but still a Referer or Sec-Fetch-Site naming the attacker's site.
    for (const headers of [
      { origin: 'null' },
      { referer: 'https://evil.example/page' },
      { referer: 'not a url' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site', referer: `${g.baseUrl}/admin/orders` },
    ] as Array<Record<string, string>>) {
      const res = await post(headers);
      expect({ headers, status: res.status }).toEqual({ headers, status: 403 });
      expect((await res.json()).message).toMatch(/Cross-origin request refused/);
    }
    expect(await reveals(orderId)).toBe(0);
    // Sign-in from another site (login CSRF: the victim signed in as the attacker) is refused the same way.
    const login = await fetch(`${g.baseUrl}/api/admin/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'null' },
      body: JSON.stringify({ email: 'ada@lab.example', password: 'admin-password-123' }),
    });
    expect(login.status).toBe(403);
    expect(login.headers.get('set-cookie')).toBeNull();

    // The dashboard's own calls, and clients that send none of these headers (curl, scripts), still work.
    for (const headers of [
      { origin: g.baseUrl },
      { referer: `${g.baseUrl}/admin/orders/${orderId}` },
      { 'sec-fetch-site': 'same-origin', origin: g.baseUrl },
      {},
    ] as Array<Record<string, string>>) {
      const res = await post(headers);
      expect({ headers, status: res.status }).toEqual({ headers, status: 201 });
    }
    expect(await reveals(orderId)).toBe(4);
  });

  it('answers patient data with Cache-Control: no-store (reveal, order, lookup, lists), never to be kept by a cache', async () => {
    const proxy = await new PatientProxyService(g.config).resolve(g.ds.manager, {
      primary: { authority: 'GENHOSP', value: 'MRN-CACHE-1' },
      identifiers: [{ authority: 'GENHOSP', value: 'MRN-CACHE-1', type: 'MR' }],
    });
    const orderId = await insertOrder(g.ds, { filler: 'CACHE-1', proxyRowId: proxy.id });
    const headers = { cookie: admin, 'content-type': 'application/json' };
    const answers = [
      await fetch(`${g.baseUrl}/api/admin/orders/${orderId}/reveal`, { method: 'POST', headers }),
      await fetch(`${g.baseUrl}/api/admin/orders/${orderId}`, { headers }),
      await fetch(`${g.baseUrl}/api/admin/orders?q=${proxy.proxyId}`, { headers }),
      await fetch(`${g.baseUrl}/api/admin/patients/lookup`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ authority: 'GENHOSP', identifier: 'MRN-CACHE-1' }),
      }),
      await fetch(`${g.baseUrl}/api/admin/audit`, { headers }),
      await fetch(`${g.baseUrl}/api/admin/orders`),
    ];
    expect(answers.map((r) => r.status)).toEqual([201, 200, 200, 200, 200, 401]);
    for (const r of answers) {
      expect({ url: r.url, cacheControl: r.headers.get('cache-control') }).toEqual({
        url: r.url,
        cacheControl: expect.stringMatching(/\bno-store\b/),
      });
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });
  it('reads at most 100 kB of JSON on the admin API and 1 MB elsewhere: a large body is refused before it is parsed', async () => {
    const big = JSON.stringify({ email: 'ada@lab.example', password: 'x'.repeat(2 * 1024 * 1024) });
    const res = await fetch(`${g.baseUrl}/api/admin/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    });
    expect(res.status).toBe(413);
    // Sent in chunks without a Content-Length, the same.
    const chunked = await fetch(`${g.baseUrl}/api/admin/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Blob([big]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    // Nor is a large body read for a path that takes none, or for no route at all.
    for (const path of ['/health/live', '/api/orders/00000000-0000-4000-8000-000000000000/images/complete', '/nope']) {
      const r = await fetch(`${g.baseUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
      });
      expect({ path, status: r.status }).toEqual({ path, status: 413 });
    }
  });

  it('ends a session 12 h after sign-in however active it is, and the cookie is kept no longer', async () => {
    await createUser(g.ds, 'max@lab.example', 'viewer', 'viewer-password-123');
    const res = await fetch(`${g.baseUrl}/api/admin/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'max@lab.example', password: 'viewer-password-123' }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toMatch(/Max-Age=43200;/);
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    const me = () => fetch(`${g.baseUrl}/api/admin/auth/me`, { headers: { cookie } }).then((r) => r.status);
    expect(await me()).toBe(200);
    // Signed in 11 h 59 min ago and used a minute ago (its idle expiry is hours away): still signed in.
    const age = (ms: number) =>
      g.ds.query(
        `UPDATE admin_sessions SET created_at = now() - $2 * interval '1 millisecond',
                last_seen_at = now() - interval '61 seconds', expires_at = now() + interval '7 hours'
          WHERE user_id = (SELECT id FROM admin_users WHERE email = $1)`,
        ['max@lab.example', ms],
      );
    await age(12 * 3600_000 - 60_000);
    expect(await me()).toBe(200);
    // Signed in 12 h ago, used all along: signed out, whatever its idle expiry says.
    await age(12 * 3600_000 + 1000);
    expect(await me()).toBe(401);
  });

  it('ends an open event stream when its session signs out', async () => {
    const { cookie } = await apiSignIn(g.baseUrl, 'ada@lab.example', 'admin-password-123');
    const res = await fetch(`${g.baseUrl}/api/admin/events`, { headers: { cookie: cookie! } });
    expect(res.status).toBe(200);
    const ended = (async () => {
      for await (const chunk of res.body!) void chunk;
      return 'ended';
    })();
    const logout = await fetch(`${g.baseUrl}/api/admin/auth/logout`, { method: 'POST', headers: { cookie: cookie! } });
    expect(logout.status).toBe(204);
    // The stream of a signed-out session closes (it used to carry on, order ids and all, for ever).
    const outcome = await Promise.race([ended, new Promise((r) => setTimeout(() => r('still open'), 10_000))]);
    expect(outcome).toBe('ended');
    expect((await fetch(`${g.baseUrl}/api/admin/events`, { headers: { cookie: cookie! } })).status).toBe(401);
  });

  it('answers 400, not 500, to text the database cannot store (U+0000, an unpaired surrogate), and acts on none of it', async () => {
    const orderId = await insertOrder(g.ds, { filler: 'NUL-1' });
    const headers = { cookie: admin, 'content-type': 'application/json' };
    const answers = [
      await fetch(`${g.baseUrl}/api/admin/orders?q=${encodeURIComponent('PL-\u0000')}`, { headers }),
      await fetch(`${g.baseUrl}/api/admin/orders/counts?q=${encodeURIComponent('PL-\u0000')}`, { headers }),
      await fetch(`${g.baseUrl}/api/admin/audit?action=${encodeURIComponent('x\u0000')}`, { headers }),
      await fetch(`${g.baseUrl}/api/admin/orders/${orderId}/actions/cancel`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ reason: 'Duplicate\u0000' }),
      }),
      await fetch(`${g.baseUrl}/api/admin/orders/${orderId}/actions/cancel`, {
        method: 'POST',
        headers,
        body: '{"reason":"Duplicate \\ud800"}',
      }),
      await fetch(`${g.baseUrl}/api/admin/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'ada@lab.example\u0000', password: 'admin-password-123' }),
      }),
    ];
    expect(answers.map((r) => r.status)).toEqual([400, 400, 400, 400, 400, 400]);
    const [order] = await g.ds.query(`SELECT status FROM orders WHERE id = $1`, [orderId]);
    expect(order.status).toBe('received');
  });

  it('does not tell which e-mails have an account: an unknown e-mail locks after as many wrong passwords as a real one', async () => {
    await createUser(g.ds, 'real@lab.example', 'viewer', 'real-password-1234');
    const answers = async (email: string) => {
      const out: Array<{ status: number; message: string }> = [];
      for (let i = 0; i < 6; i++) {
        const r = await apiSignIn(g.baseUrl, email, `guess-${i}-password`);
        out.push({ status: r.status, message: String(r.body?.message).replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, '<time>') });
      }
      return out;
    };
    const real = await answers('real@lab.example');
    const unknown = await answers('nobody-here@lab.example');
    // Five guesses lock the account (ADMIN_LOCKOUT_THRESHOLD): the sixth is refused as locked.
    expect(real.map((a) => a.status)).toEqual([401, 401, 401, 401, 423, 423]);
    expect(unknown).toEqual(real);
    // Upper case is the same e-mail, for an unknown one as for a real one.
    expect((await apiSignIn(g.baseUrl, 'NOBODY-HERE@lab.example', 'guess-x-password')).status).toBe(423);
    // The real account's lock-out is untouched: its right password is refused until the lock ends.
    expect((await apiSignIn(g.baseUrl, 'real@lab.example', 'real-password-1234')).status).toBe(423);
  });
});

/**
 * A private (RFC 1918 / unique local) address of this machine other than loopback: a hospital LAN client
 * connects from one. Undefined when the machine has none (the test is then skipped).
 */
function privateAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv6' && /^f[cd]/i.test(a.address)) return a.address;
      if (a.family === 'IPv4' && /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(a.address)) return a.address;
    }
  }
  return undefined;
}

const lanAddress = privateAddress();

(lanAddress ? describe : describe.skip)('audit log IP of a client on the hospital LAN', () => {
  let g: DashboardGateway;
  let base: string;
  beforeAll(async () => {
    // Listening on a LAN address, as a deployment does (HOST=0.0.0.0); the client connects from that network.
    g = await startDashboardGateway('httpsecip', { HOST: lanAddress! });
    const port = (g.gateway.app.getHttpServer().address() as { port: number }).port;
    base = `http://${lanAddress!.includes(':') ? `[${lanAddress}]` : lanAddress}:${port}`;
    await createUser(g.ds, 'ida@lab.example', 'admin', 'admin-password-123');
  });
  afterAll(async () => g?.stop());

  it('records where a request came from, not what its X-Forwarded-For claims', async () => {
    const res = await fetch(`${base}/api/admin/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.66' },
      body: JSON.stringify({ email: 'ida@lab.example', password: 'admin-password-123' }),
    });
    expect(res.status).toBe(200);
    const rows: Array<{ ip: string }> = await g.ds.query(
      `SELECT ip FROM audit_log WHERE user_email = 'ida@lab.example' AND action = 'auth.login'`,
    );
    expect(rows.map((r) => r.ip.replace(/^::ffff:/, ''))).toEqual([lanAddress]);
  });

  it('believes X-Forwarded-For from a proxy named in TRUST_PROXY', async () => {
    const behind = await startDashboardGateway('httpsecip2', {
      HOST: lanAddress!,
      TRUST_PROXY: 'uniquelocal, 198.51.100.0/24',
    });
    try {
      const port = (behind.gateway.app.getHttpServer().address() as { port: number }).port;
      await createUser(behind.ds, 'ivo@lab.example', 'admin', 'admin-password-123');
      const res = await fetch(`${base.replace(/:\d+$/, `:${port}`)}/api/admin/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.67' },
        body: JSON.stringify({ email: 'ivo@lab.example', password: 'admin-password-123' }),
      });
      expect(res.status).toBe(200);
      const rows: Array<{ ip: string }> = await behind.ds.query(
        `SELECT ip FROM audit_log WHERE user_email = 'ivo@lab.example' AND action = 'auth.login'`,
      );
      expect(rows.map((r) => r.ip)).toEqual(['203.0.113.67']);
    } finally {
      await behind.stop();
    }
  });
});
