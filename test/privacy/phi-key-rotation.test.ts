import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadConfig, rootLogger } from '@hemato/common';
import { PatientIdentityReader } from '@hemato/privacy';
import { testEnv } from '@hemato/testing';
import { startGateway, migratedDatabase, type TestGateway } from '../hl7/support/gateway';
import { orderMessage } from '../hl7/support/fixtures';
import { RawMllpConnection, ackOf } from '../hl7/support/mllp-test-client';

rootLogger().level = process.env.TEST_LOG_LEVEL ?? 'silent';

const run = promisify(execFile);
const CLI = path.resolve(__dirname, '../../dist/scripts/phi-rotate.js');

/** `npm run phi:rotate` (compiled) with these settings; its exit code and its two JSON lines. */
async function rotate(env: Record<string, string>, ...args: string[]) {
  try {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    return {
      code: 0,
      lines: r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
      stderr: r.stderr,
    };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return {
      code: e.code,
      lines: e.stdout
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
      stderr: e.stderr,
    };
  }
}

/** Rotating PHI_ENCRYPTION_KEY: old rows stay readable with PHI_PREVIOUS_KEYS, then phi:rotate re-seals them. */
describe('PHI key rotation', () => {
  const oldKey = randomBytes(32).toString('base64');
  const newKey = randomBytes(32).toString('base64');
  const hmacKey = randomBytes(32).toString('base64url');
  const newHmacKey = randomBytes(32).toString('base64url');
  let databaseUrl: string;
  let gw: TestGateway | undefined;
  const k1 = { PHI_KEY_ID: 'k1', PHI_ENCRYPTION_KEY: oldKey, PHI_HMAC_KEY: hmacKey };
  const k2 = { PHI_KEY_ID: 'k2', PHI_ENCRYPTION_KEY: newKey, PHI_HMAC_KEY: newHmacKey };
  /** Both keys replaced, the old ones still named. */
  const rotating = { ...k2, PHI_PREVIOUS_KEYS: `k1:${oldKey}`, PHI_PREVIOUS_HMAC_KEYS: hmacKey };
  const send = async (g: TestGateway, message: string) => {
    const c = await RawMllpConnection.open(g.mllpPort);
    try {
      return await c.request(message);
    } finally {
      c.close();
    }
  };
  /** What the CLI is given: the gateway's own settings. */
  const cliEnv = (keys: Record<string, string>) =>
    testEnv({ DATABASE_URL: databaseUrl, ...keys }) as Record<string, string>;

  beforeAll(async () => {
    databaseUrl = await migratedDatabase();
  });
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
  });

  it('keeps sealed rows readable across a key change and re-seals them all with the new key', async () => {
    const first = orderMessage({ controlId: 'ROT-1', patientId: 'MRN-ROT-1', patientName: 'ROTATE^ALICE' });
    gw = await startGateway(k1, { databaseUrl });
    const firstAck = await send(gw, first);
    expect(ackOf(firstAck).code).toBe('AA');
    expect(ackOf(await send(gw, orderMessage({ controlId: 'ROT-2', patientId: 'MRN-ROT-2' }))).code).toBe('AA');
    // A row stored before messages were sealed (kept as it came).
    await gw.db.query(
      `INSERT INTO inbound_messages (channel, sender, control_id, message_type, raw, status)
       VALUES ('hl7', 'LIS|GENHOSP', 'ROT-LEGACY', 'ORM^O01', $1, 'rejected')`,
      [orderMessage({ controlId: 'ROT-LEGACY' })],
    );
    const proxyOf = async (mrnOrder: string) =>
      (
        (await gw!.db.query(`SELECT patient_proxy_id AS id FROM orders WHERE placer_order_number = $1`, [
          mrnOrder,
        ])) as Array<{ id: string }>
      )[0]!.id;
    const aliceProxy = await proxyOf('PL-ROT-1');
    await gw.close();

    // The new keys serve, the old ones only open and find: the stored ACK of ROT-1 is read (a resend gets
    // it again), and the same patient keeps her proxy although her lookup HMAC changed.
    gw = await startGateway(rotating, { databaseUrl });
    expect(await send(gw, first)).toBe(firstAck);
    expect(
      ackOf(await send(gw, orderMessage({ controlId: 'ROT-3', patientId: 'MRN-ROT-1', patientName: 'ROTATE^ALICE' })))
        .code,
    ).toBe('AA');
    expect(await proxyOf('PL-ROT-3')).toBe(aliceProxy);

    // Without the old key the rows sealed with it cannot be opened: the CLI says which key is missing and changes nothing.
    const missing = await rotate(cliEnv(k2));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/key id\(s\) k1 .*PHI_PREVIOUS_KEYS/);
    expect(missing.lines[1].resealed).toEqual({ patientIdentities: 0, inboundMessages: 1 }); // the legacy row only
    // A wrong key under the right id: the rows it cannot open are counted and named, the run does not crash.
    const wrong = await rotate({ ...cliEnv(k2), PHI_PREVIOUS_KEYS: `k1:${randomBytes(32).toString('base64')}` });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/key id\(s\) k1 could not be opened/);
    expect(wrong.lines[1].resealed).toEqual({ patientIdentities: 0, inboundMessages: 0 });
    const check = await rotate(cliEnv(rotating), '--check');
    expect(check.code).toBe(1);
    expect(check.lines[0].before.patientIdentities.k1).toBeGreaterThanOrEqual(1);
    expect(check.lines[0].before.inboundMessages.k1).toBe(2);
    // MRN-ROT-2 has not come back since the HMAC key changed: still filed under the old one.
    expect(check.lines[0].lookups_to_move).toEqual({ moved: 1, duplicates: 0, unreadable: 0, erased: 0 });

    const done = await rotate(cliEnv(rotating), '--batch=1');
    expect(done.code).toBe(0);
    expect(done.lines[1].lookups_moved).toEqual({ moved: 1, duplicates: 0, unreadable: 0, erased: 0 });
    expect(done.lines[1].after).toEqual({
      patientIdentities: { k2: 2 },
      inboundMessages: { k2: 4 },
      inboundAcks: { k2: 3 },
    });
    const raws: Array<{ raw: string; ack: string | null }> = await gw.db.query(`SELECT raw, ack FROM inbound_messages`);
    for (const r of raws) {
      expect(r.raw.startsWith('enc:k2.')).toBe(true);
      expect(r.raw).not.toContain('ROTATE');
    }
    await gw.close();

    // The old keys can go: everything opens with the new one alone, and MRN-ROT-2 is found under the new HMAC key.
    gw = await startGateway(k2, { databaseUrl });
    expect(await send(gw, first)).toBe(firstAck);
    expect(ackOf(await send(gw, orderMessage({ controlId: 'ROT-4', patientId: 'MRN-ROT-2' }))).code).toBe('AA');
    expect(await proxyOf('PL-ROT-4')).toBe(await proxyOf('PL-ROT-2'));
    expect(await gw.db.query(`SELECT count(*)::int AS n FROM patient_proxies`)).toEqual([{ n: 2 }]);
    const reader = new PatientIdentityReader(loadConfig(testEnv({ DATABASE_URL: databaseUrl, ...k2 }), ['security']));
    const alice = await reader.read(gw.db.manager, aliceProxy);
    expect(alice?.primary.value).toBe('MRN-ROT-1');
    expect(alice?.name?.family).toBe('ROTATE');
    expect((await rotate(cliEnv(k2), '--check')).code).toBe(0);
  });

  it('refuses a PHI_PREVIOUS_KEYS entry that is not <id>:<32 bytes base64>, without showing it', () => {
    const bad = randomBytes(16).toString('base64');
    expect(() => loadConfig(testEnv({ PHI_PREVIOUS_KEYS: `k0:${bad}` }), ['security'])).toThrow(
      /PHI_PREVIOUS_KEYS: each entry must be <key id>:<32 bytes, base64>.*\(value hidden\)/,
    );
  });
});
