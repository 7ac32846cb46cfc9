import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** One line of an order's timeline. Append-only: rows are never updated or deleted. */
@Entity({ name: 'order_events' })
@Index('ix_order_events_order', ['orderId', 'id'])
export class OrderEventEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ name: 'order_id', type: 'uuid' })
  orderId!: string;

  @Column({ type: 'timestamptz', default: () => 'clock_timestamp()' })
  at!: Date;

  /** `status_changed`, `image_added`, `delivery_failed`, `note`, ... */
  @Column({ type: 'text' })
  type!: string;

  @Column({ name: 'from_status', type: 'text', nullable: true })
  fromStatus!: string | null;

  @Column({ name: 'to_status', type: 'text', nullable: true })
  toStatus!: string | null;

  /** Who caused it: `hl7`, `fhir`, `worker`, `reconciler`, `admin:<user>`, `hemato`. */
  @Column({ type: 'text' })
  actor!: string;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  detail!: Record<string, any>;
}
