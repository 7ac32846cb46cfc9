import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** Who did what, when: every view of patient data and every action in the dashboard. Append-only. */
@Entity({ name: 'audit_log' })
export class AuditLogEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'timestamptz', default: () => 'clock_timestamp()' })
  at!: Date;

  @Column({ name: 'user_id', type: 'uuid', nullable: true })
  userId!: string | null;

  /** Kept as text so the entry survives the user's deletion. */
  @Column({ name: 'user_email', type: 'text' })
  userEmail!: string;

  /** `auth.login`, `order.view`, `patient.reveal`, `order.retry`, ... */
  @Column({ type: 'text' })
  action!: string;

  @Column({ name: 'target_type', type: 'text', nullable: true })
  targetType!: string | null;

  @Column({ name: 'target_id', type: 'text', nullable: true })
  targetId!: string | null;

  /** `ok`, `denied`, `failed`. */
  @Column({ type: 'text', default: 'ok' })
  outcome!: string;

  @Column({ type: 'jsonb', default: () => "'{}'" })
  detail!: Record<string, any>;

  @Column({ type: 'text', nullable: true })
  ip!: string | null;
}
