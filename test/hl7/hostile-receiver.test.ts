import type net from 'node:net';
import { rootLogger } from '@hemato/common';
import { MllpClient, encodeFrame, readHeader, sendWithRetry } from '@hemato/hl7';
import { hostileReceiver, type Step } from './support/hostile-receiver';

rootLogger().level = process.env.TEST_LOG_LEVEL ?? 'silent';
const FAST = { attempts: 4, baseDelayMs: 20, maxDelayMs: 100 };
const ORU = (id: string, body = 'PID|1||X') =>
  `MSH|^~\\&|HB|HB|LIS|GENHOSP|20260101||ORU^R01^ORU_R01|${id}|P|2.5.1|||NE|AL\r${body}`;
const ACK = (code: string, acked: string, extra = '') =>
  `MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ACK^R01^ACK|A${Math.random().toString(36).slice(2, 8)}|P|2.5.1\rMSA|${code}|${acked}${extra}`;

const answer =
  (code: string, extra = ''): Step =>
  (socket, id) =>
    socket.write(encodeFrame(ACK(code, id, extra)));

async function settle(rx: { open: number }) {
  for (let i = 0; i < 50 && rx.open > 0; i++) await new Promise((r) => setTimeout(r, 20));
}

describe('MLLP sender against a hostile or broken receiver', () => {
  it('does not take an ACK naming another message (wrong MSA-2), an ACK without MSA, or garbage, and resends', async () => {
    const rx = await hostileReceiver([
      (s) => s.write(encodeFrame(ACK('AA', 'SOMEONE-ELSE'))),
      (s) => s.write(encodeFrame('MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ACK|X|P|2.5.1')),
      (s) => s.write(Buffer.from('\x0bnot hl7 at all\x1c\r garbage \x00\xff')),
      answer('AA'),
    ]);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 300 });
    const out = await sendWithRetry(client, ORU('W-1'), 'W-1', FAST);
    client.close();
    expect(out).toMatchObject({ result: 'accepted', attempts: 4 });
    expect(rx.received.map((m) => readHeader(m)?.controlId)).toEqual(['W-1', 'W-1', 'W-1', 'W-1']);
    await settle(rx);
    expect(rx.open).toBe(0);
    await rx.close();
  });

  it('reads an ACK split over many writes, and its own ACK after a stale one in the same write', async () => {
    const rx = await hostileReceiver([
      (s, id) => {
        const bytes = encodeFrame(ACK('AA', id));
        let i = 0;
        const next = () => {
          if (i < bytes.length) s.write(bytes.subarray(i, ++i), () => setImmediate(next));
        };
        next();
      },
      (s, id) => s.write(Buffer.concat([encodeFrame(ACK('AE', 'S-1')), encodeFrame(ACK('AA', id))])),
    ]);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 5000 });
    expect(await sendWithRetry(client, ORU('S-1'), 'S-1', FAST)).toMatchObject({ result: 'accepted', attempts: 1 });
    expect(await sendWithRetry(client, ORU('S-2'), 'S-2', FAST)).toMatchObject({ result: 'accepted', attempts: 1 });
    client.close();
    expect(rx.accepted).toBe(1);
    await rx.close();
  });

  it('takes an AA whose ACK is far larger than usual (the receiver echoes a lot): the result is not sent again', async () => {
    // 2 MB of ERR/NTE-like text after the MSA; over the 1 MB frame limit.
    const rx = await hostileReceiver([answer('AA', `|${'x'.repeat(200)}\rNTE|1||${'y'.repeat(2 * 1024 * 1024)}`)]);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 1000 });
    const out = await sendWithRetry(client, ORU('BIG-1'), 'BIG-1', FAST);
    client.close();
    expect(out).toMatchObject({ result: 'accepted', attempts: 1 });
    expect(rx.received).toHaveLength(1);
    await rx.close();
  });

  it('gives up on a frame that never ends, a receiver closing mid-frame or right after accepting, and resends', async () => {
    let connections = 0;
    const rx = await hostileReceiver(
      [
        (s) => s.write(Buffer.from(`\x0b${ACK('AA', 'N-1')}`)), // never ends
        (s, id) => {
          s.write(Buffer.from(`\x0b${ACK('AA', id).slice(0, 40)}`));
          s.end(); // closed mid-frame
        },
        answer('AA'),
      ],
      (s) => {
        // The second connection is closed as soon as it is accepted.
        if (++connections === 2) {
          s.destroy();
          return false;
        }
        return true;
      },
    );
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 400 });
    const errors: Array<string | null> = [];
    const out = await sendWithRetry(
      client,
      ORU('N-1'),
      'N-1',
      { attempts: 6, baseDelayMs: 20, maxDelayMs: 50 },
      {
        onAttempt: (_n, o) => {
          errors.push(o.error);
        },
      },
    );
    client.close();
    expect(out.result).toBe('accepted');
    expect(errors[0]).toMatch(/no ACK within 400 ms/);
    expect(errors.slice(1, -1).every((e) => /connection closed before the ACK|connect/.test(e ?? ''))).toBe(true);
    expect(errors[errors.length - 1]).toBeNull();
    expect(new Set(rx.received.map((m) => readHeader(m)?.controlId))).toEqual(new Set(['N-1']));
    await settle(rx);
    expect(rx.open).toBe(0);
    await rx.close();
  });

  it('times out on a receiver that accepts but never reads (a 5 MB ORU stuck in TCP), and leaves no connection open', async () => {
    const stuck: net.Socket[] = [];
    const rx = await hostileReceiver([answer('AA')], (s) => {
      s.pause();
      stuck.push(s);
      return false;
    });
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 300 });
    const out = await sendWithRetry(client, ORU('BP-1', `PID|1||X\rNTE|1||${'z'.repeat(5 * 1024 * 1024)}`), 'BP-1', {
      attempts: 3,
      baseDelayMs: 10,
      maxDelayMs: 10,
    });
    client.close();
    expect(out).toMatchObject({ result: 'gave_up', attempts: 3 });
    expect(out.lastError).toMatch(/no ACK within 300 ms/);
    expect(rx.accepted).toBe(3);
    // Read now: each connection the sender gave up on was closed by it (the receiver sees its end).
    for (const s of stuck) {
      s.on('end', () => s.destroy());
      s.resume();
    }
    await settle(rx);
    expect(rx.open).toBe(0);
    await rx.close();
  });

  it('retries a commit error (CE) and an AE, stops at a commit reject (CR), and takes an AA after a CA', async () => {
    const rx = await hostileReceiver([
      answer('CE'),
      (s, id) => s.write(Buffer.concat([encodeFrame(ACK('AE', id)), encodeFrame(ACK('AA', id))])),
      (s, id) => s.write(Buffer.concat([encodeFrame(ACK('CA', id)), encodeFrame(ACK('AA', id))])),
      answer('CR'),
    ]);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 2000 });
    const first = await sendWithRetry(client, ORU('E-1'), 'E-1', FAST);
    expect(first).toMatchObject({ result: 'accepted', attempts: 3 });
    const second = await sendWithRetry(client, ORU('E-2'), 'E-2', FAST);
    expect(second).toMatchObject({ result: 'rejected', attempts: 1 });
    client.close();
    await rx.close();
  });

  it('keeps one message in flight per connection: a second send waits for the first ACK', async () => {
    let held: (() => void) | null = null;
    const rx = await hostileReceiver([
      (s, id) => {
        held = () => s.write(encodeFrame(ACK('AA', id)));
      },
      answer('AA'),
    ]);
    const client = new MllpClient({ host: '127.0.0.1', port: rx.port, ackTimeoutMs: 5000 });
    const a = client.send(ORU('F-1'), 'F-1');
    const b = client.send(ORU('F-2'), 'F-2');
    for (let i = 0; i < 100 && !held; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    expect(rx.received).toHaveLength(1);
    held!();
    expect((await a).code).toBe('AA');
    expect((await b).code).toBe('AA');
    expect(rx.received.map((m) => readHeader(m)?.controlId)).toEqual(['F-1', 'F-2']);
    client.close();
    await rx.close();
  });
});
