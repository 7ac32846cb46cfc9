import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { getQueueToken } from '@nestjs/bullmq';
import { DeliveryStatus, OrderStatus, QueueName, TERMINAL_STATUSES, withDeadline } from '@hemato/common';
import type { Queue } from 'bullmq';
import { DataSource } from 'typeorm';
import { MLLP_STATS, type MllpStatsSource } from '../admin/health/mllp-stats';
import { ReadinessService } from '../health/readiness.service';
import type { MetricFamily } from './prometheus-text';

const QUERY_TIMEOUT_MS = 3000;
const JOB_STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized'] as const;

/**
 * What `/metrics` reports. Order, delivery and queue figures are read from PostgreSQL and Redis at
 * scrape time, so they describe the whole deployment (every gateway and worker), whichever gateway is
 * scraped; the MLLP and process figures are this gateway's own. Counts and codes only: no identifiers.
 * A part that does not answer is left out (its `hemato_bridge_dependency_up` says why), never a 500.
 */
@Injectable()
export class MetricsService {
  constructor(
    private readonly ds: DataSource,
    private readonly readiness: ReadinessService,
    private readonly moduleRef: ModuleRef,
  ) {}

  async collect(): Promise<MetricFamily[]> {
    const [ready, orders, deliveries, queues] = await Promise.all([
      this.readiness.check(),
      this.orders().catch(() => null),
      this.deliveries().catch(() => null),
      Promise.all(Object.values(QueueName).map((q) => this.queueCounts(q))),
    ]);
    const families: MetricFamily[] = [
      {
        name: 'hemato_bridge_dependency_up',
        help: 'Whether a dependency answered its readiness check (1) or not (0).',
        type: 'gauge',
        samples: Object.entries(ready.checks).map(([dependency, c]) => ({
          labels: { dependency },
          value: c.ok ? 1 : 0,
        })),
      },
    ];
    if (orders) families.push(...orders);
    if (deliveries) families.push(deliveries);
    families.push({
      name: 'hemato_bridge_queue_jobs',
      help: 'BullMQ jobs per queue and state.',
      type: 'gauge',
      samples: queues.flatMap(({ name, counts }) =>
        counts ? JOB_STATES.map((state) => ({ labels: { queue: name, state }, value: counts[state] ?? 0 })) : [],
      ),
    });
    families.push(...this.mllp(), ...this.process());
    return families;
  }

  private async orders(): Promise<MetricFamily[]> {
    const [byStatus, overdue] = await Promise.all([
      withDeadline(
        this.ds.query<Array<{ status: string; n: string }>>(`SELECT status, count(*) AS n FROM orders GROUP BY status`),
        QUERY_TIMEOUT_MS,
        'PostgreSQL',
      ),
      withDeadline(
        this.ds.query<Array<{ n: string }>>(
          `SELECT count(*) AS n FROM orders WHERE status <> ALL($1::text[]) AND state_deadline_at < now()`,
          [[...TERMINAL_STATUSES, OrderStatus.Failed]],
        ),
        QUERY_TIMEOUT_MS,
        'PostgreSQL',
      ),
    ]);
    const counts = new Map(byStatus.map((r) => [r.status, Number(r.n)]));
    return [
      {
        name: 'hemato_bridge_orders',
        help: 'Orders per lifecycle status.',
        type: 'gauge',
        samples: Object.values(OrderStatus).map((status) => ({ labels: { status }, value: counts.get(status) ?? 0 })),
      },
      {
        name: 'hemato_bridge_orders_overdue',
        help: 'Orders in progress whose current step has run past STALE_AFTER_MS (the reconciler re-drives them).',
        type: 'gauge',
        samples: [{ value: Number(overdue[0]?.n ?? 0) }],
      },
    ];
  }

  private async deliveries(): Promise<MetricFamily> {
    const rows = await withDeadline(
      this.ds.query<Array<{ target: string; status: string; n: string }>>(
        `SELECT target, status, count(*) AS n FROM deliveries GROUP BY target, status`,
      ),
      QUERY_TIMEOUT_MS,
      'PostgreSQL',
    );
    const counts = new Map(rows.map((r) => [`${r.target}|${r.status}`, Number(r.n)]));
    const targets = [...new Set(['hl7', 'fhir', ...rows.map((r) => r.target)])];
    return {
      name: 'hemato_bridge_deliveries',
      help: 'Result deliveries (one per report version and target) per target and status.',
      type: 'gauge',
      samples: targets.flatMap((target) =>
        Object.values(DeliveryStatus).map((status) => ({
          labels: { target, status },
          value: counts.get(`${target}|${status}`) ?? 0,
        })),
      ),
    };
  }

  private async queueCounts(name: QueueName): Promise<{ name: string; counts?: Record<string, number> }> {
    try {
      const queue = this.moduleRef.get<Queue>(getQueueToken(name), { strict: false });
      return { name, counts: await withDeadline(queue.getJobCounts(...JOB_STATES), QUERY_TIMEOUT_MS, 'Redis') };
    } catch {
      return { name };
    }
  }

  private mllp(): MetricFamily[] {
    let source: MllpStatsSource;
    try {
      source = this.moduleRef.get<MllpStatsSource>(MLLP_STATS, { strict: false });
    } catch {
      return [];
    }
    const stats = source.mllpStats();
    return [
      {
        name: 'hemato_bridge_mllp_connections',
        help: 'Open MLLP connections on this gateway.',
        type: 'gauge',
        samples: [{ value: stats.connections }],
      },
      {
        name: 'hemato_bridge_mllp_messages_received_total',
        help: 'Complete MLLP frames received by this gateway since it started.',
        type: 'counter',
        samples: [{ value: stats.messagesTotal ?? 0 }],
      },
      {
        name: 'hemato_bridge_mllp_inflight_bytes',
        help: 'Bytes of received MLLP messages being handled now (reading pauses at MLLP_MAX_INFLIGHT_BYTES).',
        type: 'gauge',
        samples: [{ value: stats.inFlightBytes ?? 0 }],
      },
      {
        name: 'hemato_bridge_mllp_buffered_bytes',
        help: 'Bytes held by MLLP messages still arriving, frames not finished yet (reading pauses at MLLP_MAX_BUFFERED_BYTES but for the largest).',
        type: 'gauge',
        samples: [{ value: stats.bufferedBytes ?? 0 }],
      },
      {
        name: 'hemato_bridge_mllp_acks_sent_total',
        help: 'Acknowledgements sent by this gateway since it started, by MSA-1 code.',
        type: 'counter',
        samples: Object.entries(stats.acksSent ?? {}).map(([code, value]) => ({ labels: { code }, value })),
      },
      ...(stats.tlsCertificate
        ? [
            {
              name: 'hemato_bridge_mllp_tls_certificate_expiry_timestamp_seconds',
              help: 'When the TLS certificate the MLLP listener serves expires (Unix time; alert well before).',
              type: 'gauge' as const,
              samples: [{ value: Math.floor(Date.parse(stats.tlsCertificate.validTo) / 1000) }],
            },
          ]
        : []),
    ];
  }

  private process(): MetricFamily[] {
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    return [
      {
        name: 'process_cpu_seconds_total',
        help: 'User and system CPU time of this gateway process.',
        type: 'counter',
        samples: [{ value: (cpu.user + cpu.system) / 1e6 }],
      },
      {
        name: 'process_resident_memory_bytes',
        help: 'Resident memory of this gateway process.',
        type: 'gauge',
        samples: [{ value: mem.rss }],
      },
      {
        name: 'nodejs_heap_used_bytes',
        help: 'V8 heap in use in this gateway process.',
        type: 'gauge',
        samples: [{ value: mem.heapUsed }],
      },
      {
        name: 'process_start_time_seconds',
        help: 'When this gateway process started (Unix time).',
        type: 'gauge',
        samples: [{ value: Math.round(Date.now() / 1000 - process.uptime()) }],
      },
    ];
  }
}
