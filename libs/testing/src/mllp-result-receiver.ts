import { MllpServer, buildAck, readHeader, type AckCode } from '@hemato/hl7';

/** The placer order number (ORC-2, first component) of a result message. */
export function placerOfOru(message: string): string | undefined {
  return message
    .split('\r')
    .find((s) => s.startsWith('ORC|'))
    ?.split('|')[2]
    ?.split('^')[0];
}

/**
 * A stand-in for the hospital's interface engine on the result side: an MLLP listener that keeps
 * every message it gets and answers each with an ACK (AA unless told otherwise). Used by the
 * end-to-end tests and by `npm run demo`.
 */
export class MllpResultReceiver {
  readonly messages: string[] = [];
  /** Every message received, answered or not (`messages` has the accepted ones). */
  readonly received: string[] = [];
  /** The ACK code for the next messages (AA, AE, AR), or 'drop' to answer nothing. */
  answer: AckCode | 'drop' = 'AA';
  /** When set, the ACK sent as it is (a receiver's own MSA-3 / ERR texts), for the message with this MSH-10. */
  answerWith: ((controlId: string) => string) | null = null;
  private server: MllpServer;
  private waiters: Array<() => void> = [];
  port = 0;

  constructor(port = 0, host = '127.0.0.1') {
    this.server = new MllpServer(
      { host, port, maxMessageBytes: 64 * 1024 * 1024, idleTimeoutMs: 0, maxConnections: 100 },
      {
        onMessage: async (frame) => {
          const text = frame.toString('utf8');
          const header = readHeader(text);
          this.received.push(text);
          const answer = this.answer;
          if (this.answerWith) return [Buffer.from(this.answerWith(header?.controlId ?? ''), 'utf8')];
          if (answer === 'drop') return [];
          if (answer === 'AA') {
            this.messages.push(text);
            this.wake();
          }
          return [
            Buffer.from(
              buildAck({ header, code: answer, us: { application: 'TEST-LIS', facility: 'TESTHOSP' } }),
              'utf8',
            ),
          ];
        },
        onOversize: () => [],
        onHandlerError: () => [],
      },
    );
  }

  async start(): Promise<this> {
    this.port = await this.server.listen();
    return this;
  }

  async stop(): Promise<void> {
    await this.server.close();
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The accepted results for a placer order number (ORC-2), in the order they came. */
  forPlacer(placer: string): string[] {
    return this.messages.filter((m) => placerOfOru(m) === placer);
  }

  /** Resolves with the first accepted message matching `predicate` (waits up to `timeoutMs`). */
  async waitFor(predicate: (m: string) => boolean, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(predicate);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`no matching message within ${timeoutMs} ms (got ${this.messages.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 250);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}
