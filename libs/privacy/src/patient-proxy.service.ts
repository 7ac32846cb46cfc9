import { createHmac } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, parsePreviousPhiKey, pooledRandomBytes, type AppConfig } from '@hemato/common';
import { PatientProxyEntity, preparedQuery } from '@hemato/persistence';
import { In, type EntityManager } from 'typeorm';
import { PhiCipher } from './phi-cipher';
import type { PatientIdentity } from './patient-identity';

/** What a caller that talks to Hemato.AI may know about a patient: the opaque proxy, nothing else. */
export interface PatientProxyRef {
  /** Row id (orders.patient_proxy_id). */
  id: string;
  /** The opaque id sent to Hemato.AI as a tag. */
  proxyId: string;
}

/** The PHI cipher of the configuration: seals with PHI_ENCRYPTION_KEY, opens with it and PHI_PREVIOUS_KEYS. */
export function phiCipherFromConfig(
  security: Pick<AppConfig['security'], 'PHI_KEY_ID' | 'PHI_ENCRYPTION_KEY' | 'PHI_PREVIOUS_KEYS'>,
): PhiCipher {
  const previous = (security.PHI_PREVIOUS_KEYS ?? []).map((entry) => {
    const key = parsePreviousPhiKey(entry);
    if (!key) throw new Error('PHI_PREVIOUS_KEYS: each entry must be <key id>:<32 bytes, base64>');
    return key;
  });
  const ids = previous.map((k) => k.id);
  if (ids.includes(security.PHI_KEY_ID))
    throw new Error(
      `PHI_PREVIOUS_KEYS names the current PHI_KEY_ID (${security.PHI_KEY_ID}): give the new key a new id`,
    );
  if (new Set(ids).size !== ids.length) throw new Error('PHI_PREVIOUS_KEYS names a key id twice');
  return new PhiCipher({ id: security.PHI_KEY_ID, key: Buffer.from(security.PHI_ENCRYPTION_KEY, 'base64') }, previous);
}

/** The keyed HMAC a patient proxy is looked up by: of the identifier's authority (any case) and value. */
export function patientLookupHmac(hmacKey: string, authority: string, value: string): string {
  return createHmac('sha256', hmacKey)
    .update(`${authority.trim().toUpperCase()}\u0000${value.trim()}`)
    .digest('base64url');
}

/**
 * Maps (assigning authority, identifier) to a stable random proxy id. Lookup is by a keyed HMAC of
 * the identifier, so the table can be searched without holding identifiers in clear.
 */
@Injectable()
export class PatientProxyService {
  private readonly cipher: PhiCipher;

  constructor(@Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'security'>) {
    this.cipher = phiCipherFromConfig(config.security);
  }

  lookupKey(authority: string, value: string): string {
    return patientLookupHmac(this.config.security.PHI_HMAC_KEY, authority, value);
  }

  /**
   * Finds or creates the proxy for this patient inside the caller's transaction. The stored identity
   * is refreshed with the latest demographics, so a result is addressed as the last order was.
   */
  async resolve(manager: EntityManager, identity: PatientIdentity): Promise<PatientProxyRef> {
    return (await this.resolveMany(manager, [identity]))[0]!;
  }

  /** `resolve` for many patients in one statement (a batch of orders); results in the same order. */
  async resolveMany(manager: EntityManager, identities: PatientIdentity[]): Promise<PatientProxyRef[]> {
    if (identities.length === 0) return [];
    const lookups = identities.map((i) => this.lookupKey(i.primary.authority, i.primary.value));
    // One row per patient: ON CONFLICT DO UPDATE may not touch the same row twice in a statement.
    const last = new Map<string, PatientIdentity>();
    lookups.forEach((l, k) => last.set(l, identities[k]!));
    const patients = [...last];
    const previous = this.config.security.PHI_PREVIOUS_HMAC_KEYS ?? [];
    if (previous.length > 0) {
      // PHI_HMAC_KEY was replaced: a patient still filed under an earlier key is moved to the current one
      // before the upsert finds her, so she keeps her proxy id (unless one was made under the new key).
      // Filed under several earlier keys (PHI_HMAC_KEY changed twice, once without naming the old one),
      // only the proxy she was last seen on moves: two rows moved to one HMAC would refuse every order of hers.
      const pairs = patients.flatMap(([lookup, identity]) =>
        previous.map((key) => [patientLookupHmac(key, identity.primary.authority, identity.primary.value), lookup]),
      );
      await manager.query(
        `UPDATE patient_proxies p SET lookup_hmac = m.current, updated_at = now()
           FROM (SELECT DISTINCT ON (u.current) q.id, u.earlier, u.current
                   FROM unnest($1::text[], $2::text[]) AS u (earlier, current)
                   JOIN patient_proxies q ON q.lookup_hmac = u.earlier
                  ORDER BY u.current, q.updated_at DESC, q.id) AS m
          WHERE p.id = m.id AND p.lookup_hmac = m.earlier
            AND NOT EXISTS (SELECT 1 FROM patient_proxies q WHERE q.lookup_hmac = m.current)`,
        [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
      );
    }
    // One array per column and unnest(): a short statement whatever the count (see OrderIntakeService).
    // Prepared once per connection in a transaction (see preparedQuery): intake runs it for every batch.
    const rows: Array<{ id: string; proxy_id: string; lookup_hmac: string }> = await preparedQuery(
      manager,
      'patient_proxies_upsert',
      `INSERT INTO patient_proxies (proxy_id, lookup_hmac, identity_enc, key_id)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
       ON CONFLICT (lookup_hmac) DO UPDATE SET identity_enc = EXCLUDED.identity_enc, key_id = EXCLUDED.key_id, updated_at = now(), purged_at = NULL
       RETURNING id, proxy_id, lookup_hmac`,
      [
        patients.map(() => 'pp-' + pooledRandomBytes(12).toString('hex')),
        patients.map(([lookup]) => lookup),
        patients.map(([, identity]) => this.cipher.encrypt(JSON.stringify(identity))),
        patients.map(() => this.cipher.keyId),
      ],
    );
    const byLookup = new Map(rows.map((r) => [r.lookup_hmac, { id: r.id, proxyId: r.proxy_id }]));
    return lookups.map((l) => {
      const ref = byLookup.get(l);
      if (!ref) throw new Error('patient proxy upsert returned no row');
      return ref;
    });
  }

  /** The proxy for a row id, for the Hemato.AI path (no PHI). */
  async proxyOf(manager: EntityManager, id: string): Promise<PatientProxyRef | null> {
    const row = await manager.findOne(PatientProxyEntity, { where: { id }, select: { id: true, proxyId: true } });
    return row ? { id: row.id, proxyId: row.proxyId } : null;
  }

  /** Finds a proxy row by identifier without decrypting anything (dashboard search). */
  async findByIdentifier(manager: EntityManager, authority: string, value: string): Promise<PatientProxyRef | null> {
    // While PHI_HMAC_KEY is being rotated a patient may still be filed under an earlier key.
    const keys = [this.config.security.PHI_HMAC_KEY, ...(this.config.security.PHI_PREVIOUS_HMAC_KEYS ?? [])];
    const row = await manager.findOne(PatientProxyEntity, {
      where: { lookupHmac: In(keys.map((k) => patientLookupHmac(k, authority, value))) },
    });
    return row ? { id: row.id, proxyId: row.proxyId } : null;
  }
}

/**
 * Reads the decrypted identity: only for addressing results to the hospital (ORU PID, FHIR subject)
 * and for an audited reveal in the dashboard. Kept apart from PatientProxyService so the Hemato.AI
 * path never has a way to PHI.
 */
@Injectable()
export class PatientIdentityReader {
  private readonly cipher: PhiCipher;

  constructor(@Inject(APP_CONFIG) config: Pick<AppConfig, 'security'>) {
    this.cipher = phiCipherFromConfig(config.security);
  }

  async read(manager: EntityManager, proxyRowId: string): Promise<PatientIdentity | null> {
    const row = await manager.findOne(PatientProxyEntity, { where: { id: proxyRowId } });
    // Erased by retention (RETENTION_DAYS): there is no identity to give any more.
    if (!row || row.purgedAt || row.identityEnc === '') return null;
    return JSON.parse(this.cipher.decrypt(row.identityEnc)) as PatientIdentity;
  }
}
