import net from 'node:net';
import { DeliveryTarget, OrderStatus } from '@hemato/common';
import { MllpClient, MllpDecoder, encodeFrame, readAck, readHeader } from '@hemato/hl7';
import { DeliveryEntity, OrderEventEntity } from '@hemato/persistence';
import { eventually, generateSmear, orderReaches, sampleOrm, startPipeline, type Pipeline } from '@hemato/testing';
import { sendHl7Order } from './support/hl7-order';

/** An ACK^R01 from the result receiver (TEST-LIS) for our ORU `oruControlId`; `enhanced` asks for a commit ACK. */
function receiverAck(controlId: string, code: string, oruControlId: string, enhanced = false): string {
  return [
    `MSH|^~\\&|TEST-LIS|TESTHOSP|HEMATO-BRIDGE|HEMATO|20261129120000||ACK^R01^ACK|${controlId}|P|2.5.1|||${enhanced ? 'AL|NE' : ''}`,
    `MSA|${code}|${oruControlId}${code === 'AA' ? '' : '|Patient not found in the LIS'}`,
  ].join('\r');
}

/**
 * Sends frames on one connection to our listener and collects every frame it answers, until `until` holds for
 * them (or the connection closes).
 */
async function talk(port: number, frames: string[], until: (replies: string[]) => boolean): Promise<string[]> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const decoder = new MllpDecoder(1024 * 1024);
  const replies: string[] = [];
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      for (const ev of decoder.push(chunk)) if (ev.kind === 'frame') replies.push(ev.data.toString('utf8'));
      if (until(replies)) resolve();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve());
    for (const f of frames) socket.write(encodeFrame(f));
  });
  socket.destroy();
  return replies;
}

/**
 * A result receiver that answers our ORU^R01 not on the connection it came on, but with an ACK of its own on a
 * connection to our listener (enhanced mode; two-socket interface engines). Without it, every ORU timed out, was
 * sent again and again, and the order failed though the receiver had taken the result.
 */
describe('the ACK of a result sent back on a connection of its own', () => {
  let p: Pipeline;
  let client: MllpClient;
  const smear = generateSmear({ width: 320, height: 240, format: 'png', seed: 33, parasites: true });

  beforeAll(async () => {
    // The worker's own wait for an ACK on its connection outlasts every test here: an order that completes was
    // answered by the ACK on the listener, taken while the worker waited.
    p = await startPipeline('result-ack-separate', { HL7_ACK_TIMEOUT_MS: '600000' });
    client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
    // The receiver takes each ORU and answers nothing on that connection.
    p.receiver.answer = 'drop';
  });
  afterAll(async () => {
    client?.close();
    await p?.close();
  });

  /** The control id (MSH-10) of the first ORU the receiver got for `placer`. */
  const oruFor = (placer: string) =>
    eventually(
      async () => {
        const oru = p.receiver.received.find((m) => m.includes(`|${placer}^`));
        return oru ? readHeader(oru)!.controlId : null;
      },
      60_000,
      `the ORU for ${placer}`,
    );

  it('an AA on the listener acknowledges the delivery: the order completes, the ACK is kept, no reply to an ACK', async () => {
    const order = await sendHl7Order(p, client, 'PL-SEP-1', { images: [{ data: smear, subtype: 'PNG' }] });
    const oruId = await oruFor('PL-SEP-1');

    // Original mode: an ACK is not acknowledged. The ORM sent after it on the same connection is the first
    // frame answered.
    const orm = sampleOrm({ controlId: 'C-SEP-AFTER', placer: 'PL-SEP-AFTER' });
    const replies = await talk(p.mllpPort, [receiverAck('LIS-ACK-1', 'AA', oruId), orm], (r) => r.length >= 1);
    expect(replies.map((r) => readAck(r)?.ackedControlId)).toEqual(['C-SEP-AFTER']);

    await orderReaches(p.db, { id: order.id }, OrderStatus.Completed, 60_000);
    const delivery = await p.db.manager.findOneByOrFail(DeliveryEntity, {
      orderId: order.id,
      target: DeliveryTarget.Hl7,
    });
    expect(delivery).toMatchObject({ status: 'acknowledged', outcome: 'AA', controlId: oruId, error: null });
    expect(delivery.response).toContain(`MSA|AA|${oruId}`);
    // Sent once: taken as answered while the worker waited, not sent again.
    expect(p.receiver.received.filter((m) => m.includes('|PL-SEP-1^')).map((m) => readHeader(m)!.controlId)).toEqual([
      oruId,
    ]);
    expect(delivery.attempts).toBe(1);
    const events = await p.db.manager.find(OrderEventEntity, {
      where: { orderId: order.id, type: 'result_ack_received' },
    });
    expect(events.map((e) => e.detail)).toEqual([
      expect.objectContaining({ controlId: oruId, code: 'AA', via: 'listener' }),
    ]);
  }, 120_000);

  it('an AR on the listener fails the delivery at once, with the commit ACK its MSH-15 asks for', async () => {
    const order = await sendHl7Order(p, client, 'PL-SEP-2', { images: [{ data: smear, subtype: 'PNG' }] });
    const oruId = await oruFor('PL-SEP-2');
    const replies = await talk(p.mllpPort, [receiverAck('LIS-ACK-2', 'AR', oruId, true)], (r) => r.length >= 1);
    expect(replies.map((r) => readAck(r))).toEqual([
      expect.objectContaining({ code: 'CA', ackedControlId: 'LIS-ACK-2' }),
    ]);

    const failed = await orderReaches(p.db, { id: order.id }, OrderStatus.Failed, 60_000);
    expect(failed.failedStep).toBe('deliveries.hl7');
    const delivery = await p.db.manager.findOneByOrFail(DeliveryEntity, {
      orderId: order.id,
      target: DeliveryTarget.Hl7,
    });
    expect(delivery).toMatchObject({ status: 'failed', outcome: 'AR' });
    expect(delivery.response).toContain(`MSA|AR|${oruId}`);
  }, 120_000);

  it('an ACK on the listener for no ORU waiting is taken quietly: a commit ACK if asked, nothing changes', async () => {
    const replies = await talk(p.mllpPort, [receiverAck('LIS-ACK-3', 'AA', 'HBR-NO-SUCH', true)], (r) => r.length >= 1);
    expect(replies.map((r) => readAck(r)?.code)).toEqual(['CA']);
    expect(await p.db.manager.count(DeliveryEntity, { where: { controlId: 'HBR-NO-SUCH' } })).toBe(0);
  });
});
