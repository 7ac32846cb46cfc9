import { DeliveryStatus, DeliveryTarget } from '@hemato/common';
import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

/** A result sent back to a hospital system: one row per (report version, target). */
@Entity({ name: 'deliveries' })
@Index('uq_delivery_report_target', ['reportId', 'target'], { unique: true })
export class DeliveryEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'order_id', type: 'uuid' })
  orderId!: string;

  @Column({ name: 'report_id', type: 'uuid' })
  reportId!: string;

  @Column({ type: 'text' })
  target!: DeliveryTarget;

  @Column({ type: 'text', default: DeliveryStatus.Pending })
  status!: DeliveryStatus;

  @Column({ type: 'int', default: 0 })
  attempts!: number;

  @Column({ name: 'last_attempt_at', type: 'timestamptz', nullable: true })
  lastAttemptAt!: Date | null;

  /** HL7 MSA-1 (AA/AE/AR) or the FHIR HTTP status. */
  @Column({ type: 'text', nullable: true })
  outcome!: string | null;

  /** The ACK or the OperationOutcome, as received. */
  @Column({ type: 'text', nullable: true })
  response!: string | null;

  /** Where it was sent: `mllp://host:port` or `mllps://host:port` (HL7; HL7_RESULT_ROUTES may pick one of several). */
  @Column({ type: 'text', nullable: true })
  destination!: string | null;

  /** Our message control id (HL7) or transaction id (FHIR): what the response is matched by. */
  @Column({ name: 'control_id', type: 'text', nullable: true })
  controlId!: string | null;

  @Column({ type: 'text', nullable: true })
  error!: string | null;

  /**
   * HL7: the receiver's application ACK when it came on a connection of its own, to our listener, rather than as
   * the answer on ours (as received; the worker takes it as that answer).
   */
  @Column({ name: 'separate_ack', type: 'text', nullable: true })
  separateAck!: string | null;

  @Column({ name: 'separate_ack_at', type: 'timestamptz', nullable: true })
  separateAckAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
