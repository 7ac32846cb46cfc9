import { MllpServer, buildAck, readHeader, type AckCode } from '@hemato/hl7';

/**
 * A hospital-side MLLP receiver for ORU tests: answers each message according to a script
 * (`AA`, `AE`, `AR`, `silent` = never answer, `drop` = close the connection, or a function giving the ACK as
 * sent, for the message with this MSH-10), then AA.
 */
export async function scriptedReceiver(script: Array<AckCode | 'silent' | 'drop' | ((controlId: string) => string)>) {
  const received: string[] = [];
  /** The frames as bytes (to check the character set they were sent in). */
  const frames: Buffer[] = [];
  let i = 0;
  const server = new MllpServer(
    { host: '127.0.0.1', port: 0, maxMessageBytes: 10 * 1024 * 1024, idleTimeoutMs: 0, maxConnections: 10 },
    {
      onMessage: async (frame, conn) => {
        const text = frame.toString('utf8');
        received.push(text);
        frames.push(frame);
        const step = script[i++] ?? 'AA';
        if (typeof step === 'function') return [Buffer.from(step(readHeader(text)?.controlId ?? ''))];
        if (step === 'silent') return [];
        if (step === 'drop') {
          conn.close();
          return [];
        }
        return [
          Buffer.from(
            buildAck({ header: readHeader(text), code: step, us: { application: 'LIS', facility: 'GENHOSP' } }),
          ),
        ];
      },
      onOversize: () => [],
      onHandlerError: () => [],
    },
  );
  const port = await server.listen();
  return { server, port, received, frames };
}
