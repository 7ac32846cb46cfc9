import type { DataSource, EntityManager } from 'typeorm';
import { openMessage, sealMessage, sealedKeyId } from './message-sealer';
import type { PhiCipher } from './phi-cipher';
import type { PatientIdentity } from './patient-identity';
import { patientLookupHmac } from './patient-proxy.service';

/** Stored PHI by the key id it is sealed with (`(not sealed)`: rows written before sealing existed). */
export interface PhiKeyCensus {
  patientIdentities: Record<string, number>;
  inboundMessages: Record<string, number>;
  inboundAcks: Record<string, number>;
}

export interface PhiResealResult {
  /** Patient identities and inbound messages (message and stored ACK together) sealed again. */
  resealed: { patientIdentities: number; inboundMessages: number };
  /** Values sealed with a key id this configuration does not know, by id: left as they are. */
  unreadable: Record<string, number>;
}

export const NOT_SEALED = '(not sealed)';
/** Census bucket of rows whose patient data retention erased (RETENTION_DAYS): nothing sealed to rotate. */
export const ERASED = '(erased)';

/** Below every uuid: where the walks through the tables (in primary key order) start. */
const FIRST_UUID = '00000000-0000-0000-0000-000000000000';

/**
 * Runs a batch again when PostgreSQL aborted it to break a deadlock (or a serialization conflict): the
 * gateway locks a batch's patients in the order its messages named them, the rotation in id order, so the
 * two can meet crosswise while the rotation runs beside live intake. Whatever the aborted attempt did was
 * rolled back, so the batch simply runs again.
 */
async function retryingRaces<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const code = (err as { code?: string } | null)?.code;
      if (attempt >= 5 || (code !== '40P01' && code !== '40001')) throw err;
    }
  }
}

/** Counts stored PHI per key id (no value is read out of the database). */
export async function censusPhiKeys(ds: DataSource): Promise<PhiKeyCensus> {
  const keyOf = (col: string) =>
    `CASE WHEN ${col} LIKE 'enc:%' THEN split_part(substr(${col}, 5), '.', 1) ELSE '${NOT_SEALED}' END`;
  const tally = (rows: Array<{ k: string; n: string }>) => Object.fromEntries(rows.map((r) => [r.k, Number(r.n)]));
  const [identities, raws, acks] = await Promise.all([
    ds.query(
      `SELECT CASE WHEN purged_at IS NULL THEN key_id ELSE '${ERASED}' END AS k, count(*) AS n FROM patient_proxies GROUP BY 1 ORDER BY 1`,
    ),
    ds.query(
      `SELECT CASE WHEN purged_at IS NULL THEN ${keyOf('raw')} ELSE '${ERASED}' END AS k, count(*) AS n FROM inbound_messages GROUP BY 1 ORDER BY 1`,
    ),
    ds.query(
      `SELECT ${keyOf('ack')} AS k, count(*) AS n FROM inbound_messages WHERE ack IS NOT NULL GROUP BY 1 ORDER BY 1`,
    ),
  ]);
  return { patientIdentities: tally(identities), inboundMessages: tally(raws), inboundAcks: tally(acks) };
}

/**
 * Seals again, with the cipher's current key, every patient identity and inbound message (and its
 * stored ACK) sealed with another key, and seals the messages stored before sealing existed. Safe
 * while the gateway and worker run (they must know the previous keys meanwhile: PHI_PREVIOUS_KEYS):
 * rows are re-read under a row lock, so a concurrent write (always sealed with the current key) is
 * never overwritten, and a run can be stopped and started again. Batches of `batchSize` rows, each
 * its own transaction. Values sealed with a key the cipher does not know are counted and left alone.
 */
export async function resealPhi(
  ds: DataSource,
  cipher: PhiCipher,
  opts: { batchSize?: number } = {},
): Promise<PhiResealResult> {
  const batchSize = opts.batchSize ?? 500;
  const result: PhiResealResult = { resealed: { patientIdentities: 0, inboundMessages: 0 }, unreadable: {} };
  const unreadable = (id: string) => (result.unreadable[id] = (result.unreadable[id] ?? 0) + 1);
  const current = cipher.keyId;
  /** Whether a stored message value must be sealed again; notes its key id in `unknown` when it is one. */
  const stale = (v: string | null, unknown: string[]): boolean => {
    if (v === null) return false;
    const id = sealedKeyId(v);
    if (id === current) return false;
    if (id !== null && !cipher.knows(id)) {
      unknown.push(id);
      return false;
    }
    return true;
  };

  // Patient identities: the key id has its own column.
  for (let after = FIRST_UUID; ;) {
    const ids: Array<{ id: string }> = await ds.query(
      `SELECT id FROM patient_proxies WHERE key_id <> $1 AND purged_at IS NULL AND id > $2 ORDER BY id LIMIT $3`,
      [current, after, batchSize],
    );
    if (ids.length === 0) break;
    after = ids[ids.length - 1]!.id;
    // Counted once the batch is committed (an attempt aborted by a deadlock runs again: see retryingRaces).
    const batch = await retryingRaces(() =>
      ds.transaction(async (m: EntityManager) => {
        // Locked and read again: a row the gateway rewrote meanwhile carries the current key and drops out.
        const rows: Array<{ id: string; identity_enc: string; key_id: string }> = await m.query(
          `SELECT id, identity_enc, key_id FROM patient_proxies
            WHERE id = ANY($1::uuid[]) AND key_id <> $2 AND purged_at IS NULL ORDER BY id FOR UPDATE`,
          [ids.map((r) => r.id), current],
        );
        const unknown: string[] = [];
        const updates: Array<{ id: string; enc: string }> = [];
        for (const row of rows) {
          if (!cipher.knows(row.key_id)) {
            unknown.push(row.key_id);
            continue;
          }
          const plain = openedOrNull(() => cipher.decrypt(row.identity_enc));
          if (plain === null) unknown.push(row.key_id);
          else updates.push({ id: row.id, enc: cipher.encrypt(plain) });
        }
        if (updates.length > 0) {
          await m.query(
            `UPDATE patient_proxies p SET identity_enc = u.enc, key_id = $3
               FROM unnest($1::uuid[], $2::text[]) AS u (id, enc) WHERE p.id = u.id`,
            [updates.map((u) => u.id), updates.map((u) => u.enc), current],
          );
        }
        return { unknown, resealed: updates.length };
      }),
    );
    batch.unknown.forEach(unreadable);
    result.resealed.patientIdentities += batch.resealed;
  }

  // Inbound messages: the key id is in the sealed value (`enc:<key id>.…`); every row is looked at once.
  const currentPrefix = `enc:${current}.`;
  for (let after = FIRST_UUID; ;) {
    // Only the id and whether each value is sealed with the current key travel here, not the messages.
    const page: Array<{ id: string; raw_current: boolean; ack_current: boolean | null }> = await ds.query(
      `SELECT id, starts_with(raw, $1) AS raw_current, starts_with(ack, $1) AS ack_current
         FROM inbound_messages WHERE id > $2 AND purged_at IS NULL ORDER BY id LIMIT $3`,
      [currentPrefix, after, batchSize],
    );
    if (page.length === 0) break;
    after = page[page.length - 1]!.id;
    const todo = page.filter((r) => !r.raw_current || r.ack_current === false).map((r) => r.id);
    if (todo.length === 0) continue;
    const batch = await retryingRaces(() =>
      ds.transaction(async (m: EntityManager) => {
        const rows: Array<{ id: string; raw: string; ack: string | null }> = await m.query(
          `SELECT id, raw, ack FROM inbound_messages WHERE id = ANY($1::uuid[]) AND purged_at IS NULL ORDER BY id FOR UPDATE`,
          [todo],
        );
        const unknown: string[] = [];
        const updates: Array<{ id: string; raw: string; ack: string | null }> = [];
        for (const row of rows) {
          const rawStale = stale(row.raw, unknown);
          const ackStale = stale(row.ack, unknown);
          if (!rawStale && !ackStale) continue;
          const raw = rawStale ? openedOrNull(() => openMessage(cipher, row.raw)) : null;
          const ack = ackStale ? openedOrNull(() => openMessage(cipher, row.ack!)) : null;
          if ((rawStale && raw === null) || (ackStale && ack === null)) {
            unknown.push(sealedKeyId(rawStale && raw === null ? row.raw : row.ack!) ?? NOT_SEALED);
            continue;
          }
          updates.push({
            id: row.id,
            raw: raw !== null ? sealMessage(cipher, raw) : row.raw,
            ack: ack !== null ? sealMessage(cipher, ack) : row.ack,
          });
        }
        if (updates.length > 0) {
          await m.query(
            `UPDATE inbound_messages im SET raw = u.raw, ack = u.ack
               FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u (id, raw, ack) WHERE im.id = u.id`,
            [updates.map((u) => u.id), updates.map((u) => u.raw), updates.map((u) => u.ack)],
          );
        }
        return { unknown, resealed: updates.length };
      }),
    );
    batch.unknown.forEach(unreadable);
    result.resealed.inboundMessages += batch.resealed;
  }
  return result;
}

/**
 * The text a sealed value opens to, or null when the key under its id does not open it (a wrong key given
 * in PHI_PREVIOUS_KEYS for that id): counted with the unreadable ones rather than ending the run.
 */
function openedOrNull(open: () => string): string | null {
  try {
    return open();
  } catch {
    return null;
  }
}

export interface PatientLookupRehashResult {
  /** Proxies filed under an earlier PHI_HMAC_KEY, moved (or, with `dryRun`, to move) to the current one. */
  moved: number;
  /**
   * Proxies that cannot move: the same patient got a second proxy under the current key (PHI_HMAC_KEY was
   * changed without PHI_PREVIOUS_HMAC_KEYS). The earlier row stays as it is, with its orders.
   */
  duplicates: number;
  /** Identities sealed with a key the cipher does not know (their lookup cannot be recomputed). */
  unreadable: number;
  /** Identities erased by retention (RETENTION_DAYS): no identifier to hash again; they are left as they are. */
  erased: number;
}

/**
 * Files every patient proxy under the current PHI_HMAC_KEY: each identity is opened, its lookup HMAC
 * computed again and, where it differs, replaced (under a check that no row holds the new one). Safe
 * while the gateway runs with PHI_PREVIOUS_HMAC_KEYS (it moves the patients it meets the same way).
 */
export async function rehashPatientLookups(
  ds: DataSource,
  cipher: PhiCipher,
  hmacKey: string,
  opts: { batchSize?: number; dryRun?: boolean } = {},
): Promise<PatientLookupRehashResult> {
  const batchSize = opts.batchSize ?? 500;
  const result: PatientLookupRehashResult = { moved: 0, duplicates: 0, unreadable: 0, erased: 0 };
  for (let after = FIRST_UUID; ;) {
    const rows: Array<{ id: string; lookup_hmac: string; identity_enc: string; key_id: string; erased: boolean }> =
      await ds.query(
        `SELECT id, lookup_hmac, identity_enc, key_id, purged_at IS NOT NULL AS erased
         FROM patient_proxies WHERE id > $1 ORDER BY id LIMIT $2`,
        [after, batchSize],
      );
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    const moves = new Map<string, { id: string; earlier: string }>();
    for (const row of rows) {
      // Erased by retention: no identifier left to hash. She gets a new proxy if she comes back.
      if (row.erased) {
        result.erased++;
        continue;
      }
      if (!cipher.knows(row.key_id)) {
        result.unreadable++;
        continue;
      }
      const plain = openedOrNull(() => cipher.decrypt(row.identity_enc));
      if (plain === null) {
        result.unreadable++;
        continue;
      }
      const { primary } = JSON.parse(plain) as PatientIdentity;
      const current = patientLookupHmac(hmacKey, primary.authority, primary.value);
      if (current === row.lookup_hmac) continue;
      if (moves.has(current)) result.duplicates++;
      else moves.set(current, { id: row.id, earlier: row.lookup_hmac });
    }
    if (moves.size === 0) continue;
    const ids = [...moves.values()].map((m) => m.id);
    const earlier = [...moves.values()].map((m) => m.earlier);
    const current = [...moves.keys()];
    if (opts.dryRun) {
      const taken: Array<{ n: string }> = await ds.query(
        `SELECT count(*) AS n FROM patient_proxies WHERE lookup_hmac = ANY($1::text[])`,
        [current],
      );
      result.duplicates += Number(taken[0]!.n);
      result.moved += moves.size - Number(taken[0]!.n);
      continue;
    }
    // Only a row still under the HMAC it was read with moves, and only where the new one is free.
    // (A SELECT around the UPDATE: TypeORM answers a bare UPDATE … RETURNING with [rows, count].)
    const moved: Array<{ id: string }> = await retryingRaces(() =>
      ds.query(
        `WITH moved AS (
         UPDATE patient_proxies p SET lookup_hmac = u.current, updated_at = now()
           FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u (id, earlier, current)
          WHERE p.id = u.id AND p.lookup_hmac = u.earlier
            AND NOT EXISTS (SELECT 1 FROM patient_proxies q WHERE q.lookup_hmac = u.current)
          RETURNING p.id)
       SELECT id FROM moved`,
        [ids, earlier, current],
      ),
    );
    result.moved += moved.length;
    // Those left where they were could not move (the gateway may have moved others itself meanwhile).
    const done = new Set(moved.map((r) => r.id));
    const stayed = [...moves.values()].filter((m) => !done.has(m.id));
    if (stayed.length === 0) continue;
    const still: Array<{ n: string }> = await ds.query(
      `SELECT count(*) AS n FROM patient_proxies p
         JOIN unnest($1::uuid[], $2::text[]) AS u (id, earlier) ON p.id = u.id AND p.lookup_hmac = u.earlier`,
      [stayed.map((m) => m.id), stayed.map((m) => m.earlier)],
    );
    result.duplicates += Number(still[0]!.n);
  }
  return result;
}
