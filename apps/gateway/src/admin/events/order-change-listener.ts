import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { APP_CONFIG, createLogger, withDeadline, type AppConfig } from '@hemato/common';
import { Client } from 'pg';
import { Subject } from 'rxjs';

const log = createLogger('admin-events');
export const ORDER_CHANNEL = 'hb_order_changed';

/**
 * One PostgreSQL connection per gateway LISTENing on `hb_order_changed` (NOTIFYed by triggers on
 * orders, order_events and deliveries, once per statement: payload = the changed order ids, comma-separated). Every change made by any process shows up
 * here, whichever gateway or worker made it. Reconnects on its own.
 */
@Injectable()
export class OrderChangeListener implements OnModuleInit, OnModuleDestroy {
  /** Order ids as they change (not de-duplicated). */
  readonly changes = new Subject<string>();
  private client: Client | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(@Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'database'>) {}

  async onModuleInit(): Promise<void> {
    await this.connect().catch(() => this.scheduleReconnect());
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.changes.complete();
    const client = this.client;
    this.client = null;
    // pg's end() never settles on a connection that already broke (a database blip): shutdown must
    // not hang on it, so it gets one second.
    if (client) {
      await withDeadline(client.end(), 1000, 'PostgreSQL (closing LISTEN)').catch(() => undefined);
    }
  }

  private async connect(): Promise<void> {
    const client = new Client({
      connectionString: this.config.database.DATABASE_URL,
      application_name: 'hemato-bridge-admin-listen',
    });
    client.on('notification', (n) => {
      // One notification per statement: up to 100 order ids joined by commas.
      if (n.channel !== ORDER_CHANNEL || !n.payload) return;
      for (const id of n.payload.split(',')) if (id) this.changes.next(id);
    });
    client.on('error', (err) => {
      log.warn({ err: err.message }, 'order change listener lost its connection');
      this.scheduleReconnect();
    });
    await client.connect();
    await client.query(`LISTEN ${ORDER_CHANNEL}`);
    if (this.stopped) {
      await client.end();
      return;
    }
    this.client = client;
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retry) return;
    const old = this.client;
    this.client = null;
    void old?.end().catch(() => undefined);
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect().catch(() => this.scheduleReconnect());
    }, 2000);
    this.retry.unref();
  }
}
