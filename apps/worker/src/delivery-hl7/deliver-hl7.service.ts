import { Inject, Injectable } from '@nestjs/common';
import {
  APP_CONFIG,
  DeliveryStatus,
  SourceChannel,
  collectionTimeOf,
  DomainError,
  DomainErrorCode,
  createLogger,
  type AppConfig,
} from '@hemato/common';
import type { ReportResults } from '@hemato/hemato-client';
import {
  MllpClient,
  bufferEncodingOf,
  buildOruR01,
  hl7ResultDestination,
  newControlId,
  pidFromIdentity,
  readAck,
  receiverText,
  sendWithRetry,
  type MllpAck,
  type PlacerAuthority,
  type RetryPolicy,
} from '@hemato/hl7';
import { currentDelivery, earlierVersionAcknowledged, newestReportId } from '@hemato/orders';
import { DeliveryEntity, InboundMessageEntity, OrderEntity, ReportEntity } from '@hemato/persistence';
import { PatientIdentityReader } from '@hemato/privacy';
import { DataSource } from 'typeorm';

const log = createLogger('deliver-hl7');

/** What a delivery job ends with: the lifecycle reads `status` (acknowledged / failed) from here. */
export interface Hl7DeliveryResult {
  deliveryId: string;
  orderId: string;
  status: DeliveryStatus;
  /** MSA-1 of the last ACK (AA/AE/AR), or null when none came. */
  outcome: string | null;
  attempts: number;
}

/** Sends within one job run; when they are used up the job fails and BullMQ retries it later. */
export const DEFAULT_HL7_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 1000, maxDelayMs: 15_000 };

/** Thrown when this run gave up but the job has attempts left: BullMQ retries it with backoff. */
export class Hl7DeliveryRetryableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Hl7DeliveryRetryableError';
  }
}

/**
 * Delivers one `deliveries` row (target hl7): builds ORU^R01 from its report (PID from the order's
 * stored identity), sends it to its receiver's destination (HL7_RESULT_ROUTES, else HL7_RESULT_HOST:PORT), and
 * records every attempt, the ACK
 * and the outcome. AA → acknowledged; AR → failed at once; AE / timeout / connection loss → retried.
 * The control id is kept across retries so the receiver can drop duplicates.
 */
@Injectable()
export class DeliverHl7Service {
  constructor(
    private readonly ds: DataSource,
    private readonly identities: PatientIdentityReader,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'hl7'>,
  ) {}

  async deliver(
    deliveryId: string,
    opts: { finalAttempt: boolean; policy?: RetryPolicy } = { finalAttempt: true },
  ): Promise<Hl7DeliveryResult> {
    // A revision stored since the job was asked for, or while it sends, is what goes out from then
    // on; the older version is superseded and not resent (see currentDelivery).
    for (let id = deliveryId; ;) {
      const asked = await this.ds.getRepository(DeliveryEntity).findOne({ where: { id } });
      if (!asked) throw new DomainError(DomainErrorCode.NotFound, `Delivery ${id} not found`);
      const delivery = await currentDelivery(this.ds.manager, asked);
      if (!delivery) return this.ended(asked.id);
      if (delivery.id !== asked.id) {
        log.info(
          { deliveryId: asked.id, orderId: asked.orderId, newer: delivery.id },
          'older report version superseded',
        );
      }
      const outcome = await this.send(delivery, opts);
      if (outcome !== 'withdrawn') return outcome;
      id = delivery.id;
    }
  }

  /** Sends one delivery (the current one): builds the ORU, sends with retries, records every attempt. */
  private async send(
    delivery: DeliveryEntity,
    opts: { finalAttempt: boolean; policy?: RetryPolicy },
  ): Promise<Hl7DeliveryResult | 'withdrawn'> {
    const repo = this.ds.getRepository(DeliveryEntity);
    const deliveryId = delivery.id;
    if (
      delivery.status === DeliveryStatus.Acknowledged ||
      delivery.status === DeliveryStatus.Failed ||
      delivery.status === DeliveryStatus.Superseded
    ) {
      return resultOf(delivery);
    }
    /** `logged`: what the log line says instead of `error`, when that holds the receiver's own words. */
    const fail = async (error: string, logged = error): Promise<Hl7DeliveryResult> => {
      await repo.update({ id: deliveryId }, { status: DeliveryStatus.Failed, error });
      log.warn({ deliveryId, orderId: delivery.orderId, error: logged }, 'HL7 delivery failed');
      return resultOf({ ...delivery, status: DeliveryStatus.Failed, error });
    };

    const c = this.config.hl7;
    const [order, report] = await Promise.all([
      this.ds.getRepository(OrderEntity).findOne({ where: { id: delivery.orderId } }),
      this.ds.getRepository(ReportEntity).findOne({ where: { id: delivery.reportId } }),
    ]);
    if (!order || !report) return fail('order or report of the delivery is missing');
    const inbound = order.inboundMessageId
      ? await this.ds.getRepository(InboundMessageEntity).findOne({ where: { id: order.inboundMessageId } })
      : null;
    // Back to the HL7 sender (MSH-3|MSH-4); a FHIR or API order's sender is an API client, not an HL7 party.
    const [toApp = '', toFacility = ''] =
      order.sourceChannel === SourceChannel.Hl7
        ? (inbound?.sender ?? '').split('|')
        : [c.HL7_RESULT_RECEIVING_APP, c.HL7_RESULT_RECEIVING_FACILITY];
    const destination = hl7ResultDestination(c, { application: toApp, facility: toFacility });
    if (!destination) {
      return fail(
        `no HL7 result destination for ${toApp}|${toFacility}: set HL7_RESULT_HOST / HL7_RESULT_PORT or an HL7_RESULT_ROUTES entry`,
      );
    }
    const identity = order.patientProxyId ? await this.identities.read(this.ds.manager, order.patientProxyId) : null;
    if (!identity) {
      return fail(
        order.purgedAt
          ? 'the patient identity was erased under the retention policy (RETENTION_DAYS): the result cannot be addressed'
          : 'the patient identity of the order is not available',
      );
    }

    const charset = c.HL7_RESULT_CHARSET === '8859/1' ? '8859/1' : 'UNICODE UTF-8';
    const controlId = delivery.controlId ?? newControlId('HBR');
    const details = order.details ?? {};
    const hd = details.senderHd as { application?: string[]; facility?: string[] } | undefined;
    const { message } = buildOruR01({
      report: report.raw as ReportResults,
      reportVersion: report.version,
      correction: await earlierVersionAcknowledged(this.ds.manager, delivery),
      us: { application: c.HL7_SENDING_APP, facility: c.HL7_SENDING_FACILITY },
      to: {
        application: toApp,
        facility: toFacility,
        // The sender's MSH-3/4 whole, as its order named them (universal ids), when the order kept them.
        ...(order.sourceChannel === SourceChannel.Hl7 && hd
          ? { applicationHd: hd.application, facilityHd: hd.facility }
          : {}),
      },
      order: {
        placerOrderNumber: order.placerOrderNumber,
        placerAuthority: (details.placerAuthority as PlacerAuthority | undefined) ?? null,
        fillerOrderNumber: order.fillerOrderNumber,
        test: { system: order.testSystem, code: order.testCode, display: order.testDisplay },
        alternateTest: alternateTestOf(details),
        orderingProvider: providerOf(details),
        // Either channel's (a FHIR order's Specimen too, with RESULT_DELIVERY=both).
        collectionTime: collectionTimeOf(details),
      },
      hl7Pid: identity.hl7Pid ?? pidFromIdentity(identity),
      controlId,
      reportedAt: report.fetchedAt,
      characterSet: charset,
      codingSystem: c.HL7_RESULT_CODING_SYSTEM,
      // The order's MSH-11 (T for training, D for debugging): its result is not production either.
      processingId: processingIdOf(details),
    });
    await repo.update(
      { id: deliveryId },
      {
        status: DeliveryStatus.Sending,
        controlId,
        destination: `${destination.tls ? 'mllps' : 'mllp'}://${hostPort(destination.host, destination.port)}`,
      },
    );

    const client = new MllpClient({
      host: destination.host,
      port: destination.port,
      ackTimeoutMs: c.HL7_ACK_TIMEOUT_MS,
      encoding: bufferEncodingOf(charset),
      tls: destination.tls
        ? {
            ...(c.HL7_RESULT_TLS_CA_FILE ? { caFile: c.HL7_RESULT_TLS_CA_FILE } : {}),
            ...(c.HL7_RESULT_TLS_CERT_FILE ? { certFile: c.HL7_RESULT_TLS_CERT_FILE } : {}),
            ...(c.HL7_RESULT_TLS_KEY_FILE ? { keyFile: c.HL7_RESULT_TLS_KEY_FILE } : {}),
          }
        : null,
    });
    let attempts = delivery.attempts;
    try {
      const outcome = await sendWithRetry(client, message, controlId, opts.policy ?? DEFAULT_HL7_RETRY, {
        onAttempt: async (_n, o) => {
          attempts++;
          await repo.update(
            { id: deliveryId },
            {
              attempts,
              lastAttemptAt: new Date(),
              outcome: o.ack?.code ?? null,
              response: o.ack?.raw ?? null,
              error: o.error,
            },
          );
        },
        stillWanted: async () => (await newestReportId(this.ds.manager, order.id)) === report.id,
        answeredElsewhere: () => this.separateAck(deliveryId, controlId),
      });
      if (outcome.result === 'withdrawn') return 'withdrawn';
      const last = { ...delivery, attempts, outcome: outcome.ack?.code ?? null };
      // The delivery row (and so the order's failure reason and timeline) say why in the receiver's words (MSA-3,
      // ERR), when its last answer was an ACK; they may name the patient, so the log line and the job's error
      // (logged, and kept by BullMQ) say only how the receiver answered.
      const said = outcome.ack ? receiverText(outcome.ack.raw) : '';
      const withWords = (why: string) => (said ? `${why}: ${said}` : why);
      switch (outcome.result) {
        case 'accepted':
          await repo.update({ id: deliveryId }, { status: DeliveryStatus.Acknowledged, error: null });
          log.info(
            {
              deliveryId,
              orderId: order.id,
              attempts,
              to: `${destination.host}:${destination.port}`,
              via: destination.via,
            },
            'ORU acknowledged',
          );
          return resultOf({ ...last, status: DeliveryStatus.Acknowledged });
        case 'rejected': {
          const why = outcome.lastError ?? 'rejected by the receiver (AR)';
          return { ...(await fail(withWords(why), why)), attempts, outcome: last.outcome };
        }
        case 'gave_up':
          if (opts.finalAttempt) {
            const why = `gave up: ${outcome.lastError ?? 'no ACK'}`;
            return { ...(await fail(withWords(why), why)), attempts, outcome: last.outcome };
          }
          await repo.update({ id: deliveryId }, { status: DeliveryStatus.Pending });
          throw new Hl7DeliveryRetryableError(`ORU not acknowledged yet: ${outcome.lastError ?? 'no ACK'}`);
      }
    } finally {
      client.close();
    }
  }

  /**
   * The application ACK the receiver sent to our listener on a connection of its own (the gateway keeps it on the
   * delivery, `separate_ack`), taken once: cleared as it is read, so an AE taken here is not read again after the
   * resend it causes. It is recorded as the attempt's answer like one received on our connection.
   */
  private async separateAck(deliveryId: string, controlId: string): Promise<MllpAck | null> {
    const rows: Array<{ raw: string | null }> = await this.ds.query(
      // (A SELECT over CTEs, because TypeORM answers a bare UPDATE ... RETURNING with [rows, count], not rows.)
      `WITH taken AS (SELECT separate_ack FROM deliveries WHERE id = $1 AND separate_ack IS NOT NULL FOR UPDATE),
            cleared AS (UPDATE deliveries d SET separate_ack = NULL FROM taken WHERE d.id = $1
                        RETURNING taken.separate_ack AS raw)
       SELECT raw FROM cleared`,
      [deliveryId],
    );
    const raw = rows[0]?.raw;
    const ack = raw ? readAck(raw) : null;
    if (!raw || !ack || ack.ackedControlId !== controlId) return null;
    log.info({ deliveryId, controlId, code: ack.code }, 'ORU answered on a connection of its own');
    return { code: ack.code, raw };
  }

  /** How a delivery that will not be sent (superseded) stands. */
  private async ended(deliveryId: string): Promise<Hl7DeliveryResult> {
    return resultOf(await this.ds.getRepository(DeliveryEntity).findOneByOrFail({ id: deliveryId }));
  }
}

function resultOf(d: DeliveryEntity): Hl7DeliveryResult {
  return { deliveryId: d.id, orderId: d.orderId, status: d.status, outcome: d.outcome, attempts: d.attempts };
}

/** OBR-4.4–4.6 kept from an HL7 order (`details.alternateTest`), if well formed. */
function alternateTestOf(
  details: Record<string, unknown>,
): { system: string | null; code: string; display: string | null } | null {
  const alt = details.alternateTest as { system?: unknown; code?: unknown; display?: unknown } | undefined;
  if (!alt || typeof alt.code !== 'string' || !alt.code) return null;
  return {
    code: alt.code,
    system: typeof alt.system === 'string' ? alt.system : null,
    display: typeof alt.display === 'string' ? alt.display : null,
  };
}

/** MSH-11 of the HL7 order (`details.processingId`); P for any other order. */
function processingIdOf(details: Record<string, unknown>): 'P' | 'T' | 'D' {
  const id = details.processingId;
  return id === 'T' || id === 'D' ? id : 'P';
}

/** The HL7 order's ordering provider (`details.orderingProvider`: XCN parts as strings), if any. */
function providerOf(
  details: Record<string, unknown>,
): { id?: string; family?: string; given?: string; authority?: string } | null {
  const p = details.orderingProvider as Record<string, unknown> | undefined;
  if (!p || typeof p !== 'object') return null;
  const out: { id?: string; family?: string; given?: string; authority?: string } = {};
  for (const key of ['id', 'family', 'given', 'authority'] as const) {
    if (typeof p[key] === 'string' && p[key]) out[key] = p[key];
  }
  return out.id || out.family ? out : null;
}

/** `host:port`, an IPv6 address in brackets. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
