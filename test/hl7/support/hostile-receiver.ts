import net from 'node:net';
import { MllpDecoder, readHeader } from '@hemato/hl7';

/** What the receiver does with the n-th message it reads (over all connections): write anything, or nothing. */
export type Step = (socket: net.Socket, controlId: string, n: number) => void;

/**
 * A raw TCP receiver for the ORU sender's tests: each message it reads (the n-th over all connections) is
 * answered by `steps[n]` (the last step repeats), with whatever bytes the step writes (well-formed ACKs or not).
 * `onAccept` sees each connection first and may take it over (return false: no reading). Counts the connections
 * it accepted and those still open.
 */
export async function hostileReceiver(steps: Step[], onAccept?: (socket: net.Socket) => boolean) {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (onAccept && !onAccept(socket)) return;
    const decoder = new MllpDecoder(64 * 1024 * 1024);
    socket.on('data', (chunk: Buffer) => {
      for (const ev of decoder.push(chunk)) {
        if (ev.kind !== 'frame') continue;
        const text = ev.data.toString('utf8');
        const n = received.push(text) - 1;
        (steps[n] ?? steps[steps.length - 1]!)(socket, readHeader(text)?.controlId ?? '', n);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    received,
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
