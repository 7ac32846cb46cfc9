import net from 'node:net';
import { encodeFrame, readAck, readHeader } from '@hemato/hl7';
import { startGateway, type TestGateway } from './support/gateway';
import { RawMllpConnection, ackOf } from './support/mllp-test-client';
import { TINY_PNG, orderMessage } from './support/fixtures';

jest.setTimeout(600_000);

const TOTAL = 10_000;
const CONNECTIONS = 8;
const SEED = Number(process.env.HL7_FUZZ_SEED ?? 20260101);

/** Small deterministic PRNG (mulberry32): a failing run can be replayed with HL7_FUZZ_SEED. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
  };
}

/** The framing bytes cannot occur inside a message: MLLP has no escaping for them. */
const clean = (b: Buffer) => Buffer.from(b.filter((x) => x !== 0x0b && x !== 0x1c));

function fixture(r: ReturnType<typeof prng>, i: number): string {
  const controlId = `FZ-${i}`;
  switch (r.int(4)) {
    case 0:
      return orderMessage({ controlId });
    case 1:
      return orderMessage({
        controlId,
        type: 'OML',
        groups: [
          { placer: `A${i}`, extra: ['NTE|1||note', 'DG1|1||B50^Malaria^I10'] },
          { placer: `B${i}`, code: '57021-8' },
        ],
      });
    case 2:
      return orderMessage({
        controlId,
        groups: [{ placer: `I${i}`, extra: [`OBX|1|ED|IMG||^IM^PNG^Base64^${TINY_PNG.toString('base64')}`] }],
      });
    default:
      return orderMessage({ controlId, groups: [{ placer: `C${i}`, control: 'CA' }] });
  }
}

const TOKENS = [
  '|',
  '^',
  '~',
  '\\',
  '&',
  '\r',
  '\n',
  'MSH',
  'PID',
  'ORC',
  'OBR',
  'OBX',
  '\\X00\\',
  '\u00ff',
  '\u0000',
  'é',
  '💥',
];

function mutate(r: ReturnType<typeof prng>, msg: string): Buffer {
  let b = Buffer.from(msg, r.next() < 0.5 ? 'utf8' : 'latin1');
  const n = 1 + r.int(6);
  for (let k = 0; k < n; k++) {
    const at = r.int(b.length + 1);
    switch (r.int(8)) {
      case 0: // flip a byte
        if (b.length) b[Math.min(at, b.length - 1)] = r.int(256);
        break;
      case 1: // delete a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(40)))]);
        break;
      case 2: // duplicate a range
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + r.int(80)), b.subarray(at)]);
        break;
      case 3: // insert random bytes
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.from(Array.from({ length: 1 + r.int(20) }, () => r.int(256))),
          b.subarray(at),
        ]);
        break;
      case 4: // truncate
        b = b.subarray(0, at);
        break;
      case 5: // insert an HL7-significant token
        b = Buffer.concat([b.subarray(0, at), Buffer.from(r.pick(TOKENS)), b.subarray(at)]);
        break;
      case 6: {
        // swap two segments
        const segs = b.toString('latin1').split('\r');
        const x = r.int(segs.length);
        const y = r.int(segs.length);
        [segs[x], segs[y]] = [segs[y]!, segs[x]!];
        b = Buffer.from(segs.join('\r'), 'latin1');
        break;
      }
      default: {
        // replace one MSH field with something odd
        const segs = b.toString('latin1').split('\r');
        const f = segs[0]!.split('|');
        const idx = 2 + r.int(Math.max(1, f.length - 2));
        f[idx] = r.pick(['', 'ADT^A01', '2.9', '8859/1', 'UNICODE UTF-8', 'KOI8-R', 'X'.repeat(300), '^^^', '\\F\\']);
        segs[0] = f.join('|');
        b = Buffer.from(segs.join('\r'), 'latin1');
      }
    }
  }
  return clean(b);
}

/** Frames in original acknowledgement mode only: each gets exactly one ACK (enhanced mode has its own tests). */
function corpus(): Buffer[] {
  const r = prng(SEED);
  const frames: Buffer[] = [];
  let i = 0;
  while (frames.length < TOTAL) {
    i++;
    const kind = r.next();
    let frame: Buffer;
    if (kind < 0.15) frame = clean(Buffer.from(Array.from({ length: r.int(400) }, () => r.int(256))));
    else if (kind < 0.25) frame = Buffer.from(fixture(r, i), 'utf8');
    else frame = mutate(r, fixture(r, i));
    const h = readHeader(frame);
    if (h && (h.acceptAckType || h.applicationAckType)) continue;
    frames.push(frame);
  }
  return frames;
}

describe('MLLP listener under fuzzing', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ MLLP_MAX_CONNECTIONS: '1200', MLLP_MAX_MESSAGE_BYTES: '65536', DATABASE_POOL_SIZE: '4' });
  });
  afterAll(async () => gw?.close());

  it(`answers every one of ${TOTAL} random and mutated frames with an ACK and keeps serving`, async () => {
    const frames = corpus();
    expect(frames).toHaveLength(TOTAL);
    const r = prng(SEED + 1);
    const perConn: Buffer[][] = Array.from({ length: CONNECTIONS }, () => []);
    frames.forEach((f, i) => perConn[i % CONNECTIONS]!.push(f));

    const codes = new Map<string, number>();
    let matched = 0;
    await Promise.all(
      perConn.map(async (list) => {
        const c = await RawMllpConnection.open(gw.mllpPort);
        // Frames go out in windows, concatenated and cut at random points, with noise between frames.
        for (let start = 0; start < list.length; start += 40) {
          const window = list.slice(start, start + 40);
          const bytes = Buffer.concat(
            window.map((f) => Buffer.concat([Buffer.from(r.next() < 0.1 ? 'junk\r\n' : ''), encodeFrame(f)])),
          );
          for (let off = 0; off < bytes.length;) {
            const n = 1 + r.int(4096);
            c.write(bytes.subarray(off, off + n));
            off += n;
          }
          const replies = await c.waitFor(start + window.length, 120_000);
          expect(replies).toHaveLength(start + window.length);
        }
        expect(c.closed).toBe(false);
        // Replies come in frame order: each names its frame's control id when that id is plain ASCII.
        list.forEach((f, k) => {
          const ack = readAck(c.replies[k]!);
          expect(ack).not.toBeNull();
          expect(['AA', 'AE', 'AR']).toContain(ack!.code);
          codes.set(ack!.code, (codes.get(ack!.code) ?? 0) + 1);
          const id = readHeader(f)?.controlId;
          if (id && /^[\x20-\x7e]+$/.test(id) && !/[|^~\\&]/.test(id)) {
            expect(ack!.ackedControlId).toBe(id);
            matched++;
          }
        });
        expect(c.replies).toHaveLength(list.length);
        c.close();
      }),
    );
    // The corpus exercised acceptance and both kinds of refusal.
    expect(codes.get('AA') ?? 0).toBeGreaterThan(100);
    expect(codes.get('AE') ?? 0).toBeGreaterThan(100);
    expect(codes.get('AR') ?? 0).toBeGreaterThan(100);
    expect(matched).toBeGreaterThan(TOTAL / 2);
    process.stdout.write(`fuzz: ${JSON.stringify(Object.fromEntries(codes))}, MSA-2 checked on ${matched}\n`);

    const after = await RawMllpConnection.open(gw.mllpPort);
    expect(ackOf(await after.request(orderMessage({ controlId: 'AFTER-FUZZ' }))).code).toBe('AA');
    after.close();
  });

  it('keeps serving while a thousand connections open at once, half of them stuck mid-frame (half-open)', async () => {
    const sockets = await Promise.all(
      Array.from(
        { length: 1000 },
        (_, i) =>
          new Promise<net.Socket>((resolve) => {
            const s = net.connect({ port: gw.mllpPort, host: '127.0.0.1' }, () => {
              if (i % 2 === 0) s.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from('MSH|^~\\&|HALF|OPEN|')]));
              resolve(s);
            });
            s.on('error', () => resolve(s));
          }),
      ),
    );
    const c = await RawMllpConnection.open(gw.mllpPort);
    expect(ackOf(await c.request(orderMessage({ controlId: 'DURING-1000' }))).code).toBe('AA');
    // Peers that vanish without FIN/RST-ing cleanly: destroy them all at once.
    for (const s of sockets) s.destroy();
    expect(ackOf(await c.request(orderMessage({ controlId: 'AFTER-1000' }))).code).toBe('AA');
    c.close();
    const health = await fetch(gw.gateway.urls.health!);
    expect(health.status).toBe(200);
  });
});
