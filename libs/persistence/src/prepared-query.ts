import type { PoolClient } from 'pg';
import { QueryFailedError, type EntityManager } from 'typeorm';
import type { PostgresQueryRunner } from 'typeorm/driver/postgres/PostgresQueryRunner';

/**
 * Runs `text` as a named prepared statement on the transaction's own connection: PostgreSQL parses,
 * analyses and plans it once per pooled connection, then each call only binds and executes. For the
 * statements a group commit runs per batch (the HL7 intake path), where parse/plan of the same long
 * text for every batch was a fixed cost per transaction. `name` must be unique per `text` (node-postgres
 * refuses a name reused with another text). Outside a transaction, an ordinary query.
 *
 * Keep the statement's result columns explicit (no `RETURNING *`, no `SELECT *` of a table): a cached
 * plan whose row type changes after a migration adds a column fails with "cached plan must not change
 * result type".
 */
export async function preparedQuery<T>(
  manager: EntityManager,
  name: string,
  text: string,
  values: unknown[],
): Promise<T[]> {
  const runner = manager.queryRunner as PostgresQueryRunner | undefined;
  if (!runner || !runner.isTransactionActive || runner.isReleased) return manager.query(text, values);
  const client = (await runner.connect()) as PoolClient;
  try {
    const result = await client.query({ name, text, values });
    return result.rows as T[];
  } catch (err) {
    // As manager.query would throw it (the pg error's code etc. are copied onto it).
    throw new QueryFailedError(text, values, err as Error);
  }
}
