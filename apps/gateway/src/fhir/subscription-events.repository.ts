import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

/** What a Backport event number means against what we saw before. */
export interface EventCheck {
  duplicate: boolean;
  /** Event numbers skipped between the last one seen and this one. */
  gap: number;
}

/** Event numbers seen per Subscription (fhir_subscription_events / fhir_subscription_state). */
@Injectable()
export class SubscriptionEventsRepository {
  constructor(private readonly ds: DataSource) {}

  private async ensure(subscription: string): Promise<void> {
    await this.ds.query(`INSERT INTO fhir_subscription_state (subscription) VALUES ($1) ON CONFLICT DO NOTHING`, [
      subscription,
    ]);
  }

  async lastEventNumber(subscription: string): Promise<number> {
    const rows: Array<{ n: string }> = await this.ds.query(
      `SELECT last_event_number::text AS n FROM fhir_subscription_state WHERE subscription = $1`,
      [subscription],
    );
    return rows[0] ? Number(rows[0].n) : 0;
  }

  /**
   * Records an event number. A number seen before is a duplicate (nothing else happens); a number
   * beyond last+1 reports the gap. Numbers are recorded even if they arrive out of order.
   */
  async record(subscription: string, eventNumber: number, focus?: string): Promise<EventCheck> {
    await this.ensure(subscription);
    return this.ds.transaction(async (m) => {
      const inserted: unknown[] = await m.query(
        `INSERT INTO fhir_subscription_events (subscription, event_number, focus) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING RETURNING event_number`,
        [subscription, eventNumber, focus ?? null],
      );
      if (inserted.length === 0) return { duplicate: true, gap: 0 };
      const rows: Array<{ n: string }> = await m.query(
        `SELECT last_event_number::text AS n FROM fhir_subscription_state WHERE subscription = $1 FOR UPDATE`,
        [subscription],
      );
      const last = Number(rows[0]?.n ?? 0);
      const gap = eventNumber > last + 1 ? eventNumber - last - 1 : 0;
      await m.query(
        `UPDATE fhir_subscription_state SET last_event_number = GREATEST(last_event_number, $2),
           gaps_detected = gaps_detected + $3, updated_at = now() WHERE subscription = $1`,
        [subscription, eventNumber, gap > 0 ? 1 : 0],
      );
      return { duplicate: false, gap };
    });
  }

  /** Un-records event numbers whose handling failed, so their resend is not taken for a duplicate. */
  async forget(subscription: string, eventNumbers: number[]): Promise<void> {
    if (eventNumbers.length === 0) return;
    await this.ds.query(`DELETE FROM fhir_subscription_events WHERE subscription = $1 AND event_number = ANY($2)`, [
      subscription,
      eventNumbers,
    ]);
  }

  /** Handshake or heartbeat: returns how many events the sender counted that we never saw. */
  async touch(subscription: string, kind: 'handshake' | 'heartbeat', eventsSinceStart?: number): Promise<number> {
    await this.ensure(subscription);
    const column = kind === 'handshake' ? 'handshake_at' : 'heartbeat_at';
    await this.ds.query(
      `UPDATE fhir_subscription_state SET ${column} = now(), updated_at = now() WHERE subscription = $1`,
      [subscription],
    );
    if (eventsSinceStart === undefined) return 0;
    const last = await this.lastEventNumber(subscription);
    return Math.max(0, eventsSinceStart - last);
  }

  /** Moves the high-water mark after a catch-up query covered the missing events. */
  async caughtUp(subscription: string, eventNumber: number): Promise<void> {
    await this.ensure(subscription);
    await this.ds.query(
      `UPDATE fhir_subscription_state SET last_event_number = GREATEST(last_event_number, $2), updated_at = now() WHERE subscription = $1`,
      [subscription, eventNumber],
    );
  }
}
