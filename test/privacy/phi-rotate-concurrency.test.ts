import { randomBytes } from 'node:crypto';
import { rootLogger } from '@hemato/common';
import { createDataSource } from '@hemato/persistence';
import { PhiCipher, resealPhi } from '@hemato/privacy';
import type { DataSource } from 'typeorm';
import { migratedDatabase } from '../hl7/support/gateway';

rootLogger().level = process.env.TEST_LOG_LEVEL ?? 'silent';

/**
 * phi:rotate runs while the gateway takes orders. Intake locks a batch's patient rows in the order the
 * message listed them, the rotation in id order: the two can deadlock, and PostgreSQL then aborts one.
 */
describe('phi:rotate while intake writes the same patients', () => {
  const oldKey = { id: 'k1', key: randomBytes(32) };
  const newKey = { id: 'k2', key: randomBytes(32) };
  let ds: DataSource;

  beforeAll(async () => {
    ds = await createDataSource({ url: await migratedDatabase() }).initialize();
  });
  afterAll(async () => {
    await ds?.destroy();
  });

  it('finishes when PostgreSQL aborts one of its batches as a deadlock victim (the batch is run again)', async () => {
    const old = new PhiCipher(oldKey);
    const rows: Array<{ id: string }> = await ds.query(
      `INSERT INTO patient_proxies (proxy_id, lookup_hmac, identity_enc, key_id)
       SELECT 'pp-dl-' || n, 'lookup-dl-' || n, $1, 'k1' FROM generate_series(1, 2) AS n
       RETURNING id`,
      [old.encrypt(JSON.stringify({ primary: { authority: 'GENHOSP', value: 'MRN-DL' }, identifiers: [] }))],
    );
    const [low, high] = rows.map((r) => r.id).sort();
    // An intake transaction holding the patient listed first (the higher id), then wanting the other one.
    const intake = ds.createQueryRunner();
    await intake.connect();
    let intakeDone: Promise<void> = Promise.resolve();
    try {
      await intake.startTransaction();
      await intake.query(`UPDATE patient_proxies SET updated_at = now() WHERE id = $1`, [high]);
      const rotation = resealPhi(ds, new PhiCipher(newKey, [oldKey]), { batchSize: 10 });
      // The rotation locks the lower id, then waits for the higher one.
      for (let i = 0; i < 50; i++) {
        const waiting: Array<{ n: number }> = await ds.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'`,
        );
        if (waiting[0]!.n > 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      intakeDone = intake
        .query(`UPDATE patient_proxies SET updated_at = now() WHERE id = $1`, [low])
        .then(() => intake.commitTransaction())
        .catch(() => intake.rollbackTransaction());
      const result = await rotation;
      await intakeDone;
      expect(result.resealed.patientIdentities).toBe(2);
    } finally {
      await intakeDone;
      await intake.release();
    }
    expect(await ds.query(`SELECT key_id, count(*)::int AS n FROM patient_proxies GROUP BY 1`)).toEqual([
      { key_id: 'k2', n: 2 },
    ]);
  });
});
