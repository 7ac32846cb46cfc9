import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { getQueueToken } from '@nestjs/bullmq';
import { APP_CONFIG, QueueName, withDeadline, type AppConfig } from '@hemato/common';
import type { Queue } from 'bullmq';
import { ReadinessService } from '../../health/readiness.service';
import { AdminOrdersRepository } from '../orders/admin-orders.repository';
import { MLLP_STATS, type MllpStats, type MllpStatsSource } from './mllp-stats';

const PROBE_TIMEOUT_MS = 3000;

export interface ProbeResult {
  url: string | null;
  ok: boolean;
  status?: number;
  ms?: number;
  error?: string;
  body?: unknown;
}

export interface HealthReport {
  at: string;
  readiness: Awaited<ReturnType<ReadinessService['check']>>;
  mllp: { configured: { host: string; port: number }; stats: MllpStats | null };
  queues: Array<{ name: string; counts?: Record<string, number>; error?: string }>;
  hemato: ProbeResult;
  ehr: ProbeResult;
  lastErrors: Awaited<ReturnType<AdminOrdersRepository['lastErrors']>>;
  /** RETENTION_DAYS (0: off) and the latest erasure it made. */
  retention: { days: number; lastPurge: Awaited<ReturnType<AdminOrdersRepository['lastRetentionPurge']>> };
}

/**
 * What went wrong with a fetch: its cause's code or message (fetch() itself says only "fetch failed"; the cause
 * names the real problem: ECONNREFUSED, ENOTFOUND, a certificate, ...), else its message. Read by shape, not
 * `instanceof Error`: fetch's errors come from Node's own realm, which is not this code's under a test runner.
 */
export function fetchErrorText(err: unknown): string {
  const text = (v: unknown) => (typeof v === 'string' && v ? v : undefined);
  const e = (err ?? {}) as { message?: unknown; cause?: { code?: unknown; message?: unknown } | null };
  const cause = typeof e.cause === 'object' && e.cause !== null ? e.cause : undefined;
  return text(cause?.code) ?? text(cause?.message) ?? text(e.message) ?? String(err);
}

async function probe(url: string | null, parseJson: boolean): Promise<ProbeResult> {
  if (!url) return { url: null, ok: false, error: 'not configured' };
  const started = Date.now();
  try {
    const res = await fetch(url, {
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      headers: { accept: 'application/json, application/fhir+json' },
    });
    const text = await res.text();
    let body: unknown;
    if (parseJson) {
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
    }
    return { url, ok: res.ok, status: res.status, ms: Date.now() - started, body };
  } catch (err) {
    return { url, ok: false, ms: Date.now() - started, error: fetchErrorText(err) };
  }
}

/** Everything the health page shows, gathered in parallel, each part with its own timeout. */
@Injectable()
export class AdminHealthService {
  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly readiness: ReadinessService,
    private readonly orders: AdminOrdersRepository,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'hemato' | 'fhir' | 'hl7' | 'orders'>,
  ) {}

  private hematoBase(): string {
    return (this.config.hemato.HEMATO_BASE_URL ?? `https://${this.config.hemato.HEMATO_REGION}.api.hemato.ai`).replace(
      /\/+$/,
      '',
    );
  }

  private mllpStats(): MllpStats | null {
    try {
      const source = this.moduleRef.get<MllpStatsSource>(MLLP_STATS, { strict: false });
      return source.mllpStats();
    } catch {
      return null;
    }
  }

  private async queueCounts(name: QueueName) {
    try {
      const queue = this.moduleRef.get<Queue>(getQueueToken(name), { strict: false });
      const counts = await withDeadline(
        queue.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized'),
        PROBE_TIMEOUT_MS,
        'Redis',
      );
      return { name, counts };
    } catch (err) {
      return { name, error: err instanceof Error ? err.message : String(err) };
    }
  }

  async report(): Promise<HealthReport> {
    const ehrBase = this.config.fhir.FHIR_EHR_BASE_URL?.replace(/\/+$/, '');
    const [readiness, queues, hemato, ehr, lastErrors, lastPurge] = await Promise.all([
      this.readiness.check(),
      Promise.all(Object.values(QueueName).map((q) => this.queueCounts(q))),
      probe(`${this.hematoBase()}/heartbeat`, true),
      probe(ehrBase ? `${ehrBase}/metadata` : null, false),
      this.orders.lastErrors(10),
      this.orders.lastRetentionPurge().catch(() => null),
    ]);
    return {
      at: new Date().toISOString(),
      readiness,
      mllp: {
        configured: { host: this.config.hl7.MLLP_HOST, port: this.config.hl7.MLLP_PORT },
        stats: this.mllpStats(),
      },
      queues,
      hemato,
      ehr,
      lastErrors,
      retention: { days: this.config.orders.RETENTION_DAYS, lastPurge },
    };
  }
}
