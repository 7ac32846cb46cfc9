import { OrderFailureCode, OrderStatus, SourceChannel } from '@hemato/common';
import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn, VersionColumn } from 'typeorm';

/** One order for one smear study. Postgres is the truth for where it is in its lifecycle. */
@Entity({ name: 'orders' })
export class OrderEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ type: 'text' })
  status!: OrderStatus;

  @Column({ name: 'source_channel', type: 'text' })
  sourceChannel!: SourceChannel;

  /** Which client of the channel placed it (FHIR: `api-key-<n>`, a key's name, `jwt:<id>`, `ehr-subscription`). */
  @Column({ name: 'source_client', type: 'text', nullable: true })
  sourceClient!: string | null;

  /** The placer's order number (HL7 ORC-2/OBR-2, FHIR ServiceRequest.identifier). */
  @Column({ name: 'placer_order_number', type: 'text', nullable: true })
  placerOrderNumber!: string | null;

  /** Our order number, assigned at intake. */
  @Column({ name: 'filler_order_number', type: 'text', unique: true })
  fillerOrderNumber!: string;

  /** Channel-specific idempotency key (e.g. FHIR identifier system|value); unique when set. */
  @Column({ name: 'external_key', type: 'text', nullable: true, unique: true })
  externalKey!: string | null;

  @Column({ name: 'patient_proxy_id', type: 'uuid', nullable: true })
  patientProxyId!: string | null;

  @Column({ name: 'inbound_message_id', type: 'uuid', nullable: true })
  inboundMessageId!: string | null;

  @Column({ name: 'test_system', type: 'text', nullable: true })
  testSystem!: string | null;

  @Column({ name: 'test_code', type: 'text', nullable: true })
  testCode!: string | null;

  @Column({ name: 'test_display', type: 'text', nullable: true })
  testDisplay!: string | null;

  /** Hemato.AI diagnostic tasks requested, e.g. `{pbs_v1}`. */
  @Column({ type: 'text', array: true, default: () => "'{}'" })
  tasks!: string[];

  @Column({ name: 'hemato_study_id', type: 'text', nullable: true })
  hematoStudyId!: string | null;

  @Column({ name: 'hemato_report_status', type: 'text', nullable: true })
  hematoReportStatus!: string | null;

  @Column({ name: 'hemato_progress', type: 'real', nullable: true })
  hematoProgress!: number | null;

  /** Hemato.AI's `user_message`, shown to staff as is. */
  @Column({ name: 'hemato_user_message', type: 'text', nullable: true })
  hematoUserMessage!: string | null;

  @Column({ name: 'failure_reason', type: 'text', nullable: true })
  failureReason!: string | null;

  @Column({ name: 'failed_step', type: 'text', nullable: true })
  failedStep!: string | null;

  /** `OrderFailureCode` of a failed order whose cause something acts on; null otherwise (and once it moves on). */
  @Column({ name: 'failure_code', type: 'text', nullable: true })
  failureCode!: OrderFailureCode | null;

  @Column({ name: 'expected_image_count', type: 'int', nullable: true })
  expectedImageCount!: number | null;

  @Column({ name: 'images_complete', type: 'boolean', default: false })
  imagesComplete!: boolean;

  /** The order must leave its current state by then, or the reconciler acts. */
  @Column({ name: 'state_deadline_at', type: 'timestamptz', nullable: true })
  stateDeadlineAt!: Date | null;

  /** Channel details that are not patient identity: ordering provider, collection time, specimen, DG1, NTE, FHIR refs. */
  @Column({ type: 'jsonb', default: () => "'{}'" })
  details!: Record<string, any>;

  @Column({ name: 'status_changed_at', type: 'timestamptz', default: () => 'now()' })
  statusChangedAt!: Date;

  /** When retention (RETENTION_DAYS) erased the order's free-text notes (and its patient data elsewhere). */
  @Column({ name: 'purged_at', type: 'timestamptz', nullable: true })
  purgedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;

  @VersionColumn()
  version!: number;
}
