import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** A message as received (HL7 v2 or a FHIR request body), with the acknowledgement we sent for it. */
@Entity({ name: 'inbound_messages' })
@Index('uq_inbound_sender_control', ['sender', 'controlId'], { unique: true })
export class InboundMessageEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'text' })
  channel!: string;

  /** HL7: `MSH-3|MSH-4`; FHIR: the authenticated client. */
  @Column({ type: 'text' })
  sender!: string;

  /** HL7 MSH-10, FHIR request id: unique per sender. */
  @Column({ name: 'control_id', type: 'text' })
  controlId!: string;

  @Column({ name: 'message_type', type: 'text', nullable: true })
  messageType!: string | null;

  @Column({ type: 'text' })
  raw!: string;

  /** `accepted`, `rejected`, `error`. */
  @Column({ type: 'text', default: 'accepted' })
  status!: string;

  /** AA/AE/AR (or CA/CE/CR) as sent. */
  @Column({ name: 'ack_code', type: 'text', nullable: true })
  ackCode!: string | null;

  /** The full acknowledgement we answered with, replayed verbatim on a duplicate. */
  @Column({ type: 'text', nullable: true })
  ack!: string | null;

  @Column({ type: 'text', nullable: true })
  error!: string | null;

  @Column({ name: 'received_at', type: 'timestamptz', default: () => 'now()' })
  receivedAt!: Date;

  /** When retention erased the message and its stored ACK (`raw` is then empty, `ack` null). */
  @Column({ name: 'purged_at', type: 'timestamptz', nullable: true })
  purgedAt!: Date | null;
}
