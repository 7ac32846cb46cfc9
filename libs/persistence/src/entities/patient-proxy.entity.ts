import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

/**
 * A patient as Hemato.AI may know them: an opaque proxy id. The real identifier and the PID fields
 * needed to address a result are kept only encrypted (`libs/privacy` owns the crypto).
 */
@Entity({ name: 'patient_proxies' })
export class PatientProxyEntity {
  @PrimaryGeneratedColumn('uuid')
  id!: string;

  /** Opaque, random, stable: the only patient reference that leaves for Hemato.AI. */
  @Column({ name: 'proxy_id', type: 'text', unique: true })
  proxyId!: string;

  /** Keyed HMAC of (assigning authority, identifier): finds the proxy without decrypting anything. */
  @Column({ name: 'lookup_hmac', type: 'text', unique: true })
  lookupHmac!: string;

  /** AES-256-GCM ciphertext of the identity (identifier, names, birth date, ...), base64 `iv.tag.data`. */
  @Column({ name: 'identity_enc', type: 'text' })
  identityEnc!: string;

  @Column({ name: 'key_id', type: 'text' })
  keyId!: string;

  /**
   * When retention erased the identity (`identity_enc` empty): the proxy id and lookup HMAC stay, so a
   * returning patient keeps her proxy and her identity is stored again with her next order.
   */
  @Column({ name: 'purged_at', type: 'timestamptz', nullable: true })
  purgedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
