import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** A Hemato.AI report for an order, one row per version (a revision is a new row). */
@Entity({ name: 'reports' })
@Index('uq_report_order_version', ['orderId', 'version'], { unique: true })
export class ReportEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'order_id', type: 'uuid' })
  orderId!: string;

  @Column({ type: 'int' })
  version!: number;

  @Column({ name: 'hemato_study_id', type: 'text' })
  hematoStudyId!: string;

  /** The `results` object as Hemato.AI returned it. */
  @Column({ type: 'jsonb' })
  raw!: Record<string, any>;

  @Column({ name: 'fetched_at', type: 'timestamptz', default: () => 'now()' })
  fetchedAt!: Date;
}
