import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/** An image (JPEG, PNG or a zip of them) belonging to an order, and where its bytes are. */
@Entity({ name: 'image_files' })
@Index('uq_image_order_name', ['orderId', 'name'], { unique: true })
export class ImageFileEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  @Column({ name: 'order_id', type: 'uuid' })
  orderId!: string;

  @Column({ type: 'text' })
  name!: string;

  /** `inline`, `url`, `upload`, `watch`. */
  @Column({ type: 'text' })
  source!: string;

  /** For `url` sources: where to fetch it from (until fetched). */
  @Column({ name: 'source_url', type: 'text', nullable: true })
  sourceUrl!: string | null;

  /** `pending` (not yet fetched), `stored`, `failed`. */
  @Column({ type: 'text', default: 'stored' })
  status!: string;

  /** SHA-224 hex of the bytes: equals the Hemato.AI file id after `sha224-i-`. */
  @Column({ name: 'content_hash', type: 'text', nullable: true })
  contentHash!: string | null;

  @Column({ name: 'size_bytes', type: 'bigint', nullable: true })
  sizeBytes!: string | null;

  @Column({ name: 'media_type', type: 'text', nullable: true })
  mediaType!: string | null;

  /** Key in the file store (a relative path, or an S3 object key). */
  @Column({ name: 'storage_key', type: 'text', nullable: true })
  storageKey!: string | null;

  /** Set once Hemato.AI confirmed the upload (`sha224-i-...`). */
  @Column({ name: 'hemato_file_id', type: 'text', nullable: true })
  hematoFileId!: string | null;

  @Column({ type: 'text', nullable: true })
  error!: string | null;

  /** For `url` sources: the size the order declared (FHIR Attachment.size), checked when fetched. */
  @Column({ name: 'declared_size', type: 'bigint', nullable: true })
  declaredSize!: string | null;

  /** For `url` sources: the SHA-1 (hex) the order declared (FHIR Attachment.hash), checked when fetched. */
  @Column({ name: 'declared_sha1', type: 'text', nullable: true })
  declaredSha1!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
