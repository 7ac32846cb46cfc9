import net from 'node:net';
import { MllpServer, encodeFrame, type MllpServerOptions } from '@hemato/hl7';
import { rootLogger } from '@hemato/common';
import { RawMllpConnection } from './support/mllp-test-client';

rootLogger().level = process.env.TEST_LOG_LEVEL ?? 'silent';

/** A bare listener answering `ACK:<n>:<first 20 bytes>` per frame, to test the transport alone. */
async function echoServer(opts: Partial<MllpServerOptions> = {}) {
  const seen: Buffer[] = [];
  const server = new MllpServer(
    { host: '127.0.0.1', port: 0, maxMessageBytes: 1024 * 1024, idleTimeoutMs: 0, maxConnections: 100, ...opts },
    {
      onMessage: async (frame) => {
        seen.push(frame);
        // Out-of-order completion must not reorder the replies.
        await new Promise((r) => setTimeout(r, frame.length % 3));
        return [Buffer.from(`ACK:${frame.length}:${frame.subarray(0, 20).toString('latin1')}`)];
      },
      onOversize: (head, size) => [Buffer.from(`AR:oversize:${size}:${head.subarray(0, 8).toString('latin1')}`)],
      onHandlerError: () => [Buffer.from('AR:error')],
    },
  );
  const port = await server.listen();
  return { server, port, seen };
}

describe('MLLP transport', () => {
  it('reassembles a frame split over many TCP writes, one byte at a time', async () => {
    const { server, port, seen } = await echoServer();
    const c = await RawMllpConnection.open(port);
    try {
      const msg = 'MSH|^~\\&|A|B|C|D|20260101||ORM^O01|BYTEWISE|P|2.3\rPID|1||X';
      const frame = encodeFrame(msg);
      for (const b of frame) {
        c.write(Buffer.from([b]));
        await new Promise((r) => setImmediate(r));
      }
      expect(await c.waitFor(1)).toEqual([`ACK:${Buffer.byteLength(msg)}:MSH|^~\\&|A|B|C|D|202`]);
      expect(seen[0]!.toString()).toBe(msg);
    } finally {
      c.close();
      await server.close();
    }
  });

  it('splits many frames in one write (with noise between them) and answers each, in order', async () => {
    const { server, port } = await echoServer();
    const c = await RawMllpConnection.open(port);
    try {
      const msgs = Array.from({ length: 50 }, (_, i) => `MSG-${String(i).padStart(3, '0')}-${'x'.repeat(i)}`);
      const parts = msgs.map((m, i) => Buffer.concat([Buffer.from(i % 5 === 0 ? 'noise\r\n' : ''), encodeFrame(m)]));
      c.write(Buffer.concat(parts));
      const replies = await c.waitFor(50);
      expect(replies).toEqual(msgs.map((m) => `ACK:${m.length}:${m.slice(0, 20)}`));
    } finally {
      c.close();
      await server.close();
    }
  });

  it('splits frames across arbitrary chunk boundaries, including between FS and CR', async () => {
    const { server, port } = await echoServer();
    const c = await RawMllpConnection.open(port);
    try {
      const msgs = Array.from({ length: 30 }, (_, i) => `CHUNK-${i}-${'y'.repeat(i * 7)}`);
      const all = Buffer.concat(msgs.map((m) => encodeFrame(m)));
      let off = 0;
      let step = 1;
      while (off < all.length) {
        c.write(all.subarray(off, off + step));
        off += step;
        step = (step * 7 + 3) % 23 || 1;
        await new Promise((r) => setImmediate(r));
      }
      expect(await c.waitFor(30)).toEqual(msgs.map((m) => `ACK:${m.length}:${m.slice(0, 20)}`));
    } finally {
      c.close();
      await server.close();
    }
  });

  it('drops a frame over the size limit with an AR and keeps the connection usable', async () => {
    const { server, port, seen } = await echoServer({ maxMessageBytes: 2048 });
    const c = await RawMllpConnection.open(port);
    try {
      const big = 'MSH|^~\\&|BIG' + 'z'.repeat(10_000);
      c.send(big);
      c.send('MSH|after');
      const replies = await c.waitFor(2);
      expect(replies[0]).toBe(`AR:oversize:${big.length}:MSH|^~\\&`);
      expect(replies[1]).toBe('ACK:9:MSH|after');
      expect(seen.map((b) => b.toString())).toEqual(['MSH|after']);
    } finally {
      c.close();
      await server.close();
    }
  });

  it('drops a truncated frame when a new frame starts, and answers the new one', async () => {
    const { server, port } = await echoServer();
    const c = await RawMllpConnection.open(port);
    try {
      c.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from('MSH|truncated...'), encodeFrame('MSH|whole')]));
      expect(await c.waitFor(1)).toEqual(['ACK:9:MSH|whole']);
    } finally {
      c.close();
      await server.close();
    }
  });

  it('closes idle connections after MLLP_IDLE_TIMEOUT_MS and keeps accepting new ones', async () => {
    const { server, port } = await echoServer({ idleTimeoutMs: 300 });
    const idle = await RawMllpConnection.open(port);
    await idle.waitFor(1, 5000); // returns when the server closes it
    expect(idle.closed).toBe(true);
    const c = await RawMllpConnection.open(port);
    expect(await c.request('MSH|fresh')).toBe('ACK:9:MSH|fresh');
    c.close();
    await server.close();
  });

  it('refuses connections beyond the limit and keeps serving the ones it has', async () => {
    const { server, port } = await echoServer({ maxConnections: 3 });
    const held = await Promise.all([1, 2, 3].map(() => RawMllpConnection.open(port)));
    await new Promise((r) => setTimeout(r, 100));
    expect(server.connections).toBe(3);
    const extra = await RawMllpConnection.open(port);
    extra.send('MSH|extra');
    await extra.waitFor(1, 3000);
    expect(extra.closed).toBe(true);
    expect(extra.replies).toEqual([]);
    expect(await held[0]!.request('MSH|held')).toBe('ACK:8:MSH|held');
    held.forEach((h) => h.close());
    await server.close();
  });

  it('stops reading from a peer that does not read its replies, and catches up once it does', async () => {
    // Each reply is 256 KiB: a peer that sends and never reads would otherwise pile replies up in our memory.
    const reply = Buffer.alloc(256 * 1024, 'A');
    let handled = 0;
    const server = new MllpServer(
      { host: '127.0.0.1', port: 0, maxMessageBytes: 1024 * 1024, idleTimeoutMs: 0, maxConnections: 10 },
      {
        onMessage: async (frame) => {
          handled++;
          return [Buffer.concat([frame.subarray(0, 16), reply])];
        },
        onOversize: () => [],
        onHandlerError: () => [],
      },
    );
    const port = await server.listen();
    const c = await RawMllpConnection.open(port);
    try {
      c.socket.pause(); // a stuck sender: it writes, it does not read
      const total = 400;
      // 32 KiB frames, so they reach the listener over many reads (as a steady sender's would).
      const pad = 'x'.repeat(32 * 1024);
      for (let i = 0; i < total; i++) c.send(`MSG-${String(i).padStart(4, '0')}${pad}`);
      // Wait until the listener stops taking frames (no change for 500 ms; a slow machine needs longer).
      let whileStuck = -1;
      for (let i = 0; i < 40 && handled !== whileStuck; i++) {
        whileStuck = handled;
        await new Promise((r) => setTimeout(r, 500));
      }
      expect(handled).toBe(whileStuck);
      // Kernel buffers and the frames in progress hold a bounded number; the rest waits unread in TCP.
      expect(whileStuck).toBeLessThan(total / 2);
      // Another peer is served meanwhile.
      const other = await RawMllpConnection.open(port);
      expect((await other.request('MSH|other')).startsWith('MSH|otherAAAA')).toBe(true);
      other.close();
      c.socket.resume();
      const replies = await c.waitFor(total);
      expect(replies).toHaveLength(total);
      expect(replies.map((r) => r.slice(0, 8))).toEqual(
        Array.from({ length: total }, (_, i) => `MSG-${String(i).padStart(4, '0')}`),
      );
    } finally {
      c.close();
      await server.close();
    }
  });

  it('stops reading from a peer whose frames in progress fill the in-flight byte budget, serving others meanwhile', async () => {
    // A sender pushing large messages without waiting for ACKs (a backlog of image orders): each one
    // is held in memory until it is answered, so what is read ahead is capped in bytes, not only in frames.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const handled: string[] = [];
    const server = new MllpServer(
      {
        host: '127.0.0.1',
        port: 0,
        maxMessageBytes: 1024 * 1024,
        idleTimeoutMs: 0,
        maxConnections: 10,
        maxInFlightBytes: 1024 * 1024,
      },
      {
        onMessage: async (frame) => {
          const name = frame.subarray(0, 8).toString('latin1');
          handled.push(name);
          if (name.startsWith('BIG')) await gate; // e.g. a commit that takes its time
          return [Buffer.from(`ACK:${name}`)];
        },
        onOversize: () => [],
        onHandlerError: () => [],
      },
    );
    const port = await server.listen();
    const big = await RawMllpConnection.open(port);
    try {
      const total = 12;
      const pad = 'x'.repeat(400 * 1024);
      for (let i = 0; i < total; i++) big.send(`BIG-${String(i).padStart(4, '0')}${pad}`);
      // Wait until the listener stops taking frames (no change for 500 ms; a slow machine needs longer).
      let whileHeld = -1;
      for (let i = 0; i < 40 && handled.length !== whileHeld; i++) {
        whileHeld = handled.length;
        await new Promise((r) => setTimeout(r, 500));
      }
      // 1 MiB holds two 400 KiB frames; the third crosses it and reading stops (a read in hand may finish one more).
      expect(whileHeld).toBeGreaterThanOrEqual(2);
      expect(whileHeld).toBeLessThanOrEqual(4);
      // A peer with nothing in progress is still read and answered while the budget is spent.
      const other = await RawMllpConnection.open(port);
      expect(await other.request('MSH|other')).toBe('ACK:MSH|othe');
      other.close();
      release();
      const replies = await big.waitFor(total);
      expect(replies).toEqual(Array.from({ length: total }, (_, i) => `ACK:BIG-${String(i).padStart(4, '0')}`));
    } finally {
      release();
      big.close();
      await server.close();
    }
  });

  /** Waits until `read()` keeps its value for 500 ms (a slow machine needs longer), returns it. */
  async function settled(read: () => number): Promise<number> {
    let last = -1;
    for (let i = 0; i < 40 && read() !== last; i++) {
      last = read();
      await new Promise((r) => setTimeout(r, 500));
    }
    return read();
  }

  it('caps the bytes of unfinished frames across connections, serving small messages and finishing every frame', async () => {
    // Many peers each send the first half of a large frame (slowly, or never the rest): without a cap
    // each one's half would sit in our memory, up to MLLP_MAX_MESSAGE_BYTES times MLLP_MAX_CONNECTIONS.
    const budget = 2 * 1024 * 1024;
    const half = 512 * 1024;
    const { server, port } = await echoServer({ maxMessageBytes: 8 * 1024 * 1024, maxBufferedBytes: budget });
    const senders = await Promise.all(Array.from({ length: 30 }, () => RawMllpConnection.open(port)));
    const small = await RawMllpConnection.open(port);
    try {
      senders.forEach((c, i) =>
        c.write(
          Buffer.concat([
            Buffer.from([0x0b]),
            Buffer.from(`BIG-${String(i).padStart(2, '0')}`),
            Buffer.alloc(half, 'x'),
          ]),
        ),
      );
      const held = await settled(() => server.bufferedBytes);
      // The budget, plus the frame that is read on (the largest) and about one read per connection.
      expect(held).toBeGreaterThanOrEqual(budget);
      expect(held).toBeLessThanOrEqual(budget + half + senders.length * 128 * 1024);
      // A message arriving whole on another connection is answered meanwhile.
      expect(await small.request('MSH|small')).toBe('ACK:9:MSH|small');
      // The senders finish their frames: every one is answered, none is left waiting.
      senders.forEach((c) => c.write(Buffer.concat([Buffer.alloc(half, 'y'), Buffer.from([0x1c, 0x0d])])));
      const replies = await Promise.all(senders.map((c) => c.waitFor(1, 30_000)));
      expect(replies).toEqual(
        senders.map((_, i) => [`ACK:${2 * half + 6}:BIG-${String(i).padStart(2, '0')}${'x'.repeat(14)}`]),
      );
      expect(server.bufferedBytes).toBe(0);
    } finally {
      senders.forEach((c) => c.close());
      small.close();
      await server.close();
    }
  });

  it('closes the connection read on when its unfinished frame stalls while others wait for the buffer budget', async () => {
    const budget = 1024 * 1024;
    const { server, port } = await echoServer({
      maxMessageBytes: 8 * 1024 * 1024,
      maxBufferedBytes: budget,
      partialStallMs: 300,
    });
    const stuck = await RawMllpConnection.open(port);
    const senders = await Promise.all(Array.from({ length: 6 }, () => RawMllpConnection.open(port)));
    try {
      // The largest unfinished frame, whose sender then goes silent (a crashed or malicious peer).
      stuck.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from('STUCK'), Buffer.alloc(2 * 1024 * 1024, 's')]));
      await settled(() => server.bufferedBytes);
      // Whole frames, each larger than what the budget leaves: they wait for the stuck one, then go on.
      const body = (i: number) => `OK-${i}${'o'.repeat(512 * 1024)}`;
      senders.forEach((c, i) => c.send(body(i)));
      const replies = await Promise.all(senders.map((c) => c.waitFor(1, 30_000)));
      expect(replies).toEqual(senders.map((_, i) => [`ACK:${body(i).length}:${body(i).slice(0, 20)}`]));
      expect(stuck.closed).toBe(true);
      expect(stuck.replies).toEqual([]);
      expect(server.bufferedBytes).toBe(0);
    } finally {
      stuck.close();
      senders.forEach((c) => c.close());
      await server.close();
    }
  });

  it('closes the connection read on when its unfinished frame only trickles while others wait for the buffer budget', async () => {
    // A slow-loris peer: it holds the largest unfinished frame and keeps sending, but a few bytes at a
    // time. Sending something is not enough to keep the turn while others wait: it must make progress.
    const budget = 1024 * 1024;
    const { server, port } = await echoServer({
      maxMessageBytes: 8 * 1024 * 1024,
      maxBufferedBytes: budget,
      partialStallMs: 300,
    });
    const trickler = await RawMllpConnection.open(port);
    const senders = await Promise.all(Array.from({ length: 6 }, () => RawMllpConnection.open(port)));
    let trickling = true;
    try {
      trickler.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from('SLOW'), Buffer.alloc(2 * 1024 * 1024, 't')]));
      await settled(() => server.bufferedBytes);
      // 64 bytes every 20 ms: about 1 KiB per stall window, far below what any real link carries.
      void (async () => {
        while (trickling && !trickler.closed) {
          trickler.write(Buffer.alloc(64, 'u'));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      // Whole frames, each larger than what the budget leaves: they wait for the trickler, then go on.
      const body = (i: number) => `OK-${i}${'o'.repeat(512 * 1024)}`;
      senders.forEach((c, i) => c.send(body(i)));
      const replies = await Promise.all(senders.map((c) => c.waitFor(1, 15_000)));
      expect(replies).toEqual(senders.map((_, i) => [`ACK:${body(i).length}:${body(i).slice(0, 20)}`]));
      expect(trickler.closed).toBe(true);
      expect(trickler.replies).toEqual([]);
      expect(server.bufferedBytes).toBe(0);
    } finally {
      trickling = false;
      trickler.close();
      senders.forEach((c) => c.close());
      await server.close();
    }
  });

  it('keeps reading the largest unfinished frame while it makes progress, over many stall windows', async () => {
    // A slow but honest sender (a thin link): well above the minimum per window, it keeps its turn until
    // its frame completes, however many windows that takes; the others go on after it.
    const budget = 1024 * 1024;
    const { server, port } = await echoServer({
      maxMessageBytes: 8 * 1024 * 1024,
      maxBufferedBytes: budget,
      partialStallMs: 300,
      partialMinBytes: 16 * 1024,
    });
    const slow = await RawMllpConnection.open(port);
    const senders = await Promise.all(Array.from({ length: 4 }, () => RawMllpConnection.open(port)));
    try {
      slow.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from('SLOW'), Buffer.alloc(2 * 1024 * 1024, 's')]));
      await settled(() => server.bufferedBytes);
      const body = (i: number) => `OK-${i}${'o'.repeat(512 * 1024)}`;
      senders.forEach((c, i) => c.send(body(i)));
      // 32 KiB every 100 ms for 3 s: about 96 KiB per window, ten windows and more.
      const chunks = 30;
      for (let i = 0; i < chunks && !slow.closed; i++) {
        slow.write(Buffer.alloc(32 * 1024, 'u'));
        await new Promise((r) => setTimeout(r, 100));
      }
      slow.write(Buffer.from([0x1c, 0x0d]));
      expect(await slow.waitFor(1)).toEqual([`ACK:${4 + 2 * 1024 * 1024 + chunks * 32 * 1024}:SLOW${'s'.repeat(16)}`]);
      expect(slow.closed).toBe(false);
      const replies = await Promise.all(senders.map((c) => c.waitFor(1, 30_000)));
      expect(replies).toEqual(senders.map((_, i) => [`ACK:${body(i).length}:${body(i).slice(0, 20)}`]));
      expect(server.bufferedBytes).toBe(0);
    } finally {
      slow.close();
      senders.forEach((c) => c.close());
      await server.close();
    }
  });

  it('still answers a peer that half-closes right after sending (FIN), then closes', async () => {
    const { server, port } = await echoServer();
    try {
      const socket = net.connect({ port, host: '127.0.0.1' });
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      const received: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => received.push(chunk));
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const msgs = ['MSH|half-1', 'MSH|half-2', 'MSH|half-3'];
      socket.end(Buffer.concat(msgs.map((m) => encodeFrame(m))));
      await closed; // our side ends once the replies are written
      const replies = Buffer.concat(received)
        .toString('latin1')
        .split('\x1c\r')
        .filter(Boolean)
        .map((f) => f.replace('\x0b', ''));
      expect(replies).toEqual(msgs.map((m) => `ACK:${m.length}:${m}`));
    } finally {
      await server.close();
    }
  });

  it('enables TCP keep-alive on accepted sockets', async () => {
    let keepAlive: boolean | undefined;
    const orig = net.Socket.prototype.setKeepAlive;
    const spy = jest.spyOn(net.Socket.prototype, 'setKeepAlive').mockImplementation(function (
      this: net.Socket,
      enable,
      delay,
    ) {
      keepAlive = enable;
      return orig.call(this, enable, delay);
    });
    const { server, port } = await echoServer();
    const c = await RawMllpConnection.open(port);
    expect(await c.request('MSH|ka')).toBe('ACK:6:MSH|ka');
    expect(keepAlive).toBe(true);
    spy.mockRestore();
    c.close();
    await server.close();
  });
});
