import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { MllpClient, readAck } from '@hemato/hl7';
import { Hl7ListenerService } from '../../apps/gateway/src/hl7/hl7-listener.service';
import { startGateway, type TestGateway } from './support/gateway';
import { makeTestPki, type TestPki } from './support/certs';
import { RawMllpConnection, ackOf } from './support/mllp-test-client';
import { orderMessage } from './support/fixtures';

jest.setTimeout(90_000);

/** Opens a connection and sends one order; resolves with the reply or null when the peer refused us. */
async function tryOrder(port: number, controlId: string, tlsOpts?: Parameters<typeof RawMllpConnection.open>[1]) {
  let c: RawMllpConnection;
  try {
    c = await RawMllpConnection.open(port, tlsOpts);
  } catch {
    return null;
  }
  try {
    c.send(orderMessage({ controlId }));
    const [reply] = await c.waitFor(1, 5000);
    return reply ?? null;
  } catch {
    return null;
  } finally {
    c.close();
  }
}

describe('MLLP over TLS', () => {
  let pki: TestPki;
  let tlsGw: TestGateway;
  let mtlsGw: TestGateway;

  beforeAll(async () => {
    pki = makeTestPki();
    tlsGw = await startGateway({ MLLP_TLS_CERT_FILE: pki.serverCert, MLLP_TLS_KEY_FILE: pki.serverKey });
    mtlsGw = await startGateway({
      MLLP_TLS_CERT_FILE: pki.serverCert,
      MLLP_TLS_KEY_FILE: pki.serverKey,
      MLLP_TLS_CA_FILE: pki.caCert,
      MLLP_TLS_REQUIRE_CLIENT_CERT: 'true',
      MLLP_ALLOWED_SENDERS: 'LIS|GENHOSP,RIS|*',
    });
  });
  afterAll(async () => {
    await tlsGw?.close();
    await mtlsGw?.close();
  });

  it('accepts orders over TLS and does not answer plain TCP on the TLS port', async () => {
    expect(tlsGw.gateway.urls.mllp).toMatch(/^mllps:\/\//);
    const reply = await tryOrder(tlsGw.mllpPort, 'TLS-1', { ca: readFileSync(pki.caCert) });
    expect(ackOf(reply!).code).toBe('AA');
    expect(await tryOrder(tlsGw.mllpPort, 'PLAIN-1')).toBeNull();
  });

  it('under mutual TLS accepts a client certificate from the configured CA and refuses none or a stranger', async () => {
    const ca = readFileSync(pki.caCert);
    const ok = await tryOrder(mtlsGw.mllpPort, 'MTLS-1', {
      ca,
      cert: readFileSync(pki.clientCert),
      key: readFileSync(pki.clientKey),
    });
    expect(ackOf(ok!).code).toBe('AA');
    expect(await tryOrder(mtlsGw.mllpPort, 'MTLS-NOCERT', { ca })).toBeNull();
    expect(
      await tryOrder(mtlsGw.mllpPort, 'MTLS-STRANGER', {
        ca,
        cert: readFileSync(pki.strangerCert),
        key: readFileSync(pki.strangerKey),
      }),
    ).toBeNull();
    const stored = await mtlsGw.db.query(`SELECT control_id FROM inbound_messages ORDER BY control_id`);
    expect(stored.map((r: { control_id: string }) => r.control_id)).toEqual(['MTLS-1']);
  });

  it('answers AR to a sending application/facility not on MLLP_ALLOWED_SENDERS', async () => {
    const opts = { ca: readFileSync(pki.caCert), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
    const c = await RawMllpConnection.open(mtlsGw.mllpPort, opts);
    const other = ackOf(
      await c.request(orderMessage({ controlId: 'AL-1', sendingApp: 'EVIL', sendingFacility: 'GENHOSP' })),
    );
    expect(other.code).toBe('AR');
    expect(other.errors[0]).toContain('not allowed');
    const wildcard = ackOf(
      await c.request(orderMessage({ controlId: 'AL-2', sendingApp: 'RIS', sendingFacility: 'ANYWHERE' })),
    );
    expect(wildcard.code).toBe('AA');
    c.close();
    const n = await mtlsGw.db.query(`SELECT count(*)::int AS n FROM inbound_messages WHERE control_id = 'AL-1'`);
    expect(n[0].n).toBe(0);
  });

  it('the ORU sender speaks mutual TLS too (HL7_RESULT_TLS_* files)', async () => {
    const client = new MllpClient({
      host: '127.0.0.1',
      port: mtlsGw.mllpPort,
      ackTimeoutMs: 5000,
      tls: { caFile: pki.caCert, certFile: pki.clientCert, keyFile: pki.clientKey },
    });
    const oru = 'MSH|^~\\&|HB|HB|LIS|GENHOSP|20260101||ORU^R01^ORU_R01|ORU-TLS-1|P|2.5.1\rPID|1||X';
    const ack = await client.send(oru, 'ORU-TLS-1');
    client.close();
    // The gateway takes orders, not results: it answers AR 200, matched to our control id over TLS.
    expect(ack.code).toBe('AR');
    expect(readAck(ack.raw)?.ackedControlId).toBe('ORU-TLS-1');
  });
});

describe('MLLP over TLS: a renewed certificate', () => {
  let first: TestPki;
  let renewed: TestPki;
  let gw: TestGateway;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hl7-tls-renew-'));
  const certFile = path.join(dir, 'server.crt');
  const keyFile = path.join(dir, 'server.key');
  const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

  beforeAll(async () => {
    first = makeTestPki();
    renewed = makeTestPki();
    copyFileSync(first.serverCert, certFile);
    copyFileSync(first.serverKey, keyFile);
    gw = await startGateway({ MLLP_TLS_CERT_FILE: certFile, MLLP_TLS_KEY_FILE: keyFile, MLLP_TLS_RELOAD_MS: '100' });
  });
  afterAll(async () => {
    await gw?.close();
  });

  /** A new connection trusting both CAs: the certificate it was served, and the ACK to one order on it. */
  async function connect(controlId: string): Promise<{ served: string; code: string; conn: RawMllpConnection }> {
    const conn = await RawMllpConnection.open(gw.mllpPort, {
      ca: [readFileSync(first.caCert), readFileSync(renewed.caCert)],
    });
    const served = (conn.socket as tls.TLSSocket).getPeerX509Certificate()!.fingerprint256;
    const code = ackOf(await conn.request(orderMessage({ controlId }))).code;
    return { served, code, conn };
  }

  it('serves new connections with the renewed certificate without a restart; a half-written or broken one is not taken', async () => {
    const before = await connect('RENEW-1');
    expect(before).toMatchObject({ served: fingerprint(first.serverCert), code: 'AA' });

    // Half-way through a renewal: the new certificate beside the old key. It does not load: the old pair stays.
    copyFileSync(renewed.serverCert, certFile);
    await new Promise((r) => setTimeout(r, 600));
    const half = await connect('RENEW-2');
    expect(half).toMatchObject({ served: fingerprint(first.serverCert), code: 'AA' });
    half.conn.close();

    // The renewal completes: new connections get the new certificate.
    copyFileSync(renewed.serverKey, keyFile);
    let after = await connect('RENEW-3');
    for (let i = 0; after.served !== fingerprint(renewed.serverCert) && i < 50; i++) {
      after.conn.close();
      await new Promise((r) => setTimeout(r, 100));
      after = await connect(`RENEW-3-${i}`);
    }
    expect(after).toMatchObject({ served: fingerprint(renewed.serverCert), code: 'AA' });
    after.conn.close();
    // The health page and /metrics name the certificate now served, and when it expires.
    const shown = gw.gateway.app.get(Hl7ListenerService).mllpStats().tlsCertificate!;
    const cert = new X509Certificate(readFileSync(renewed.serverCert));
    expect(shown).toMatchObject({ fingerprint256: cert.fingerprint256, validTo: new Date(cert.validTo).toISOString() });
    const metrics = await (await fetch(`${gw.gateway.urls.http}/metrics`)).text();
    expect(metrics).toContain(
      `hemato_bridge_mllp_tls_certificate_expiry_timestamp_seconds ${Math.floor(Date.parse(cert.validTo) / 1000)}`,
    );

    // A connection opened before the renewal goes on as it was.
    expect(ackOf(await before.conn.request(orderMessage({ controlId: 'RENEW-4' }))).code).toBe('AA');
    before.conn.close();

    // A broken file is logged and ignored: the renewed pair keeps serving.
    writeFileSync(certFile, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    await new Promise((r) => setTimeout(r, 600));
    const broken = await connect('RENEW-5');
    expect(broken).toMatchObject({ served: fingerprint(renewed.serverCert), code: 'AA' });
    broken.conn.close();
  });
});
