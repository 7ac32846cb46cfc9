import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig } from '@hemato/common';
import { ackWanted, buildAck, isEnhancedMode, readAck, type Hl7Identity, type MshHeader } from '@hemato/hl7';
import { appendEvent } from '@hemato/orders';
import { DataSource } from 'typeorm';

const log = createLogger('hl7-result-ack');

/**
 * An application ACK for one of our ORU^R01s that the receiver sends to our listener on a connection of its own,
 * instead of answering on the connection the ORU came on: what enhanced mode allows (our ORU asks MSH-16 `AL`), and
 * what two-socket interface engines do. It is matched to its delivery by MSA-2 (our ORU's MSH-10) and kept on it
 * (`separate_ack`); the worker sending that ORU takes it as its answer once its own wait ends, instead of sending
 * again. An ACK is not itself acknowledged (HL7 original mode), except with the commit ACK its MSH-15 asks for.
 */
@Injectable()
export class ResultAckIntake {
  private readonly us: Hl7Identity;

  constructor(
    private readonly ds: DataSource,
    @Inject(APP_CONFIG) config: Pick<AppConfig, 'hl7'>,
  ) {
    this.us = { application: config.hl7.HL7_SENDING_APP, facility: config.hl7.HL7_SENDING_FACILITY };
  }

  /** Takes one ACK message (decoded): the replies to send back (none in original mode). */
  async take(header: MshHeader, text: string): Promise<string[]> {
    const ack = readAck(text);
    const controlId = ack?.ackedControlId ?? '';
    if (!ack || !controlId || !ack.code) {
      log.warn({ controlId: header.controlId }, 'ACK without MSA-1/MSA-2 on the listener: not taken');
      return this.commitAck(header, 'CR');
    }
    // PostgreSQL text holds no NUL (a broken receiver's): kept as U+FFFD, as on the sending side.
    // eslint-disable-next-line no-control-regex -- U+0000 is what it replaces
    const raw = text.replace(/\u0000/g, '\ufffd');
    const rows: Array<{ id: string; order_id: string }> = await this.ds.query(
      `WITH taken AS (
         UPDATE deliveries SET separate_ack = $2, separate_ack_at = now()
          WHERE target = 'hl7' AND control_id = $1 AND status IN ('pending', 'sending')
         RETURNING id, order_id)
       SELECT * FROM taken`,
      [controlId, raw],
    );
    const taken = rows[0];
    if (!taken) {
      // Late (the delivery is settled: answered on its own connection, or failed), or not ours.
      log.info({ controlId, ackControlId: header.controlId, code: ack.code }, 'ACK on the listener for no waiting ORU');
      return this.commitAck(header, 'CA');
    }
    await appendEvent(this.ds.manager, {
      orderId: taken.order_id,
      type: 'result_ack_received',
      actor: 'hl7',
      detail: { deliveryId: taken.id, controlId, code: ack.code, via: 'listener' },
    });
    log.info(
      { deliveryId: taken.id, orderId: taken.order_id, controlId, code: ack.code },
      'ORU ACK taken on the listener',
    );
    return this.commitAck(header, 'CA');
  }

  /** The commit ACK the ACK's MSH-15 asks for (read as for orders); none in original mode. */
  private commitAck(header: MshHeader, code: 'CA' | 'CR'): string[] {
    const wanted = isEnhancedMode(header) && ackWanted(header.acceptAckType, code === 'CA');
    return wanted ? [buildAck({ header, code, us: this.us })] : [];
  }
}
