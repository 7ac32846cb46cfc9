import pino from 'pino';
import { OrderStatus, rootLogger } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { DeliveryEntity, OrderEventEntity } from '@hemato/persistence';
import { generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';

/**
 * The hospital's result interface refuses our ORU^R01 and says why (MSA-3, ERR). Its words are what an operator
 * needs to fix the cause, so the order's failure reason and timeline carry them; they may name the patient, so
 * no log line does (the logs are captured here, as the worker writes them).
 */
describe('an ORU^R01 the receiver rejects with its own words', () => {
  let p: Pipeline;
  let client: MllpClient;
  const lines: string[] = [];
  const root = rootLogger() as unknown as Record<symbol, unknown>;
  const stream = root[pino.symbols.streamSym];

  beforeAll(async () => {
    root[pino.symbols.streamSym] = { write: (line: string) => lines.push(line) };
    p = await startPipeline('hl7-receiver-reject', { LOG_LEVEL: 'debug' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
    root[pino.symbols.streamSym] = stream;
    rootLogger().level = process.env.TEST_LOG_LEVEL ?? 'silent';
  });

  it("fails the order with the receiver's MSA-3 and ERR text in its reason and timeline, and logs none of it", async () => {
    // A v2.5 AR: MSA-3, then ERR-3 (HL7 error code) and ERR-8 (user message), escaped as HL7 text is.
    p.receiver.answerWith = (id) =>
      [
        `MSH|^~\\&|LIS|GENHOSP|HEMATO-BRIDGE|HEMATO|20260101||ACK^R01^ACK|RJ-${id}|P|2.5.1`,
        `MSA|AR|${id}|Patient DOE\\S\\JANE MRN-777 not on file`,
        `ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||Ask ward 7 about DOE JANE`,
      ].join('\r');
    const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 11, parasites: false });
    const ack = await client.send(
      sampleOrm({ controlId: 'C-REJ-1', placer: 'PL-REJ-1', images: [{ data: smear, subtype: 'PNG' }] }),
      'C-REJ-1',
    );
    expect(ack.code).toBe('AA');

    const order = await orderReaches(p.db, { placerOrderNumber: 'PL-REJ-1' }, OrderStatus.Failed, 90_000);
    expect(order.failureReason).toContain('Delivery to hl7 failed: receiver answered AR');
    expect(order.failureReason).toContain('Patient DOE^JANE MRN-777 not on file');
    expect(order.failureReason).toContain('204 Unknown key identifier');
    expect(order.failureReason).toContain('Ask ward 7 about DOE JANE');
    const [delivery] = await p.db.manager.find(DeliveryEntity, { where: { orderId: order.id } });
    expect(delivery).toMatchObject({ status: 'failed', outcome: 'AR' });
    expect(delivery!.error).toContain('Patient DOE^JANE MRN-777 not on file');
    const events = await p.db.manager.find(OrderEventEntity, { where: { orderId: order.id }, order: { id: 'ASC' } });
    const failed = events.find((e) => e.toStatus === OrderStatus.Failed);
    expect(String(failed!.detail.reason)).toContain('Ask ward 7 about DOE JANE');

    // The worker logged the failure (by its ids), without the receiver's words.
    const log = lines.join('');
    expect(log).toContain('HL7 delivery failed');
    expect(log).toContain(delivery!.id);
    expect(log).not.toMatch(/DOE|MRN-777|ward 7/);
  });
});
