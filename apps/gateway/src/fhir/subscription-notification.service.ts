import { createHash } from 'node:crypto';
import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig } from '@hemato/common';
import {
  cancels,
  BundleResolver,
  EhrHttpError,
  FhirOperationError,
  criteriaParams,
  operationOutcome,
  ourServiceRequestCriteria,
  type EhrClient,
  type SubscriptionNotification,
} from '@hemato/fhir';
import { OrderActionsService, OrderCodeTable, type ActionResult } from '@hemato/orders';
import type { InboundMessageEntity } from '@hemato/persistence';
import type { Bundle, OperationOutcome, ServiceRequest } from '@medplum/fhirtypes';
import { EHR_CLIENT } from './ehr-client.provider';
import {
  FhirOrderIntakeUseCase,
  HoldRefusedError,
  NO_ORDER_TO_CANCEL,
  TOO_LATE_TO_CANCEL,
  type IntakeContext,
  type IntakeResult,
} from './fhir-order-intake.use-case';
import { FhirOrdersRepository } from './fhir-orders.repository';
import { SubscriptionEventsRepository } from './subscription-events.repository';

const log = createLogger('fhir-subscription');

/**
 * The Subscription path acts for the EHR, whose ServiceRequests it reads from the EHR itself: its
 * orders are `ehr-subscription`'s, and a ServiceRequest it reads may repeat or revoke any client's order
 * (the EHR is the source of them all). Whoever called the hook does not own what it brings in.
 */
const SUBSCRIPTION_CALLER = { id: 'ehr-subscription', allOrders: true } as const;

/**
 * The sender of the ServiceRequests this path refused, kept as inbound messages. A reserved client name (no
 * FHIR API key may be called so, a JWT client is `jwt:…`): it tells them from requests a client POSTed itself.
 */
export const SUBSCRIPTION_SENDER = SUBSCRIPTION_CALLER.id;

/**
 * The control id of a refused ServiceRequest: the same for the same version, so a catch-up that meets it again
 * keeps no second copy, and another for a new version. Its version id, else its lastUpdated, else (an EHR that
 * versions nothing) a digest of its content.
 */
export function refusedControlId(sr: ServiceRequest): string {
  const at = `ServiceRequest/${sr.id}`;
  if (sr.meta?.versionId) return `${at}/_history/${sr.meta.versionId}`;
  if (sr.meta?.lastUpdated) return `${at}@${sr.meta.lastUpdated}`;
  return `${at}#${createHash('sha256').update(JSON.stringify(sr)).digest('hex').slice(0, 16)}`;
}

/** How a ServiceRequest from the EHR is taken in: references read from the EHR, as the Subscription caller. */
function intakeContextFor(ehr: EhrClient): IntakeContext {
  return { resolver: new BundleResolver(undefined, ehr), caller: SUBSCRIPTION_CALLER, ehrBaseUrl: ehr.baseUrl };
}

/** What an OperationOutcome says, as the stored error of a refused message (every issue, in order). */
function refusalText(err: FhirOperationError): string {
  const said = (err.outcome.issue ?? []).map((i) => i.diagnostics ?? i.details?.text ?? i.code).filter(Boolean);
  return said.length > 0 ? said.join('; ') : `Refused (${err.status})`;
}

/** What one notification led to (also the answer's diagnostics). */
export interface NotificationResult {
  kind: string;
  ordersCreated: string[];
  ordersExisting: string[];
  rejected: number;
  duplicates: number;
  gaps: number;
}

/**
 * Acts on rest-hook notifications: reads the ServiceRequest, its Patient and attachments from the
 * EHR and takes the order in. Backport event numbers are recorded; a repeat is skipped, a gap (or a
 * notification without a focus) triggers a catch-up search of active ServiceRequests.
 */
@Injectable()
export class SubscriptionNotificationService implements OnModuleInit {
  /** The search that finds our ServiceRequests (also the Subscription's criteria). */
  readonly criteria: string;

  constructor(
    @Inject(EHR_CLIENT) private readonly ehr: EhrClient | null,
    private readonly intake: FhirOrderIntakeUseCase,
    private readonly events: SubscriptionEventsRepository,
    private readonly repo: FhirOrdersRepository,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'fhir'>,
    @Inject(OrderCodeTable) codes: OrderCodeTable,
    private readonly actions: OrderActionsService,
  ) {
    this.criteria = ourServiceRequestCriteria(config.fhir.FHIR_SUBSCRIPTION_CRITERIA, codes.entries());
  }

  onModuleInit(): void {
    // The dashboard's "Replay" of a ServiceRequest this path refused; a refused request a client POSTed itself
    // was answered with its OperationOutcome, and is not replayed.
    this.actions.registerReplayer(
      'fhir',
      (message, actor) => this.replay(message, actor),
      (message) => message.sender === SUBSCRIPTION_SENDER,
    );
  }

  /**
   * Takes a refused ServiceRequest in again, once the cause is fixed (a code mapped, a host allowed, the order
   * corrected in the EHR): read again from the EHR, as it is now (the stored one may be outdated), and run
   * through the same intake, the order made under the stored message. Still refused, the message keeps the new
   * error.
   */
  async replay(message: InboundMessageEntity, actor: string): Promise<ActionResult> {
    if (message.status === 'accepted')
      return { ok: false, message: 'This ServiceRequest was accepted and its order exists: nothing to replay' };
    let id: unknown;
    try {
      id = (JSON.parse(message.raw) as ServiceRequest).id;
    } catch {
      id = undefined;
    }
    if (typeof id !== 'string' || !/^[A-Za-z0-9\-.]{1,64}$/.test(id))
      return { ok: false, message: 'The stored message names no ServiceRequest to read again' };
    if (!this.ehr)
      return {
        ok: false,
        message: 'No EHR is configured (FHIR_EHR_BASE_URL): the ServiceRequest cannot be read again',
      };
    const ehr = this.ehr;
    const ctx: IntakeContext = { ...intakeContextFor(ehr), actor };
    let taken: IntakeResult | null;
    try {
      const sr = (await ehr.resolve(`ServiceRequest/${id}`)) as ServiceRequest | undefined;
      if (!sr) {
        return {
          ok: false,
          message: `ServiceRequest/${id} could not be read from the EHR (removed, or not readable by us): nothing to take in`,
        };
      }
      // Read and checked (Patient, attachments from the EHR) before the row is locked.
      const parsed = await this.intake.parse(sr, ctx);
      taken = await this.repo.transaction(async (m) => {
        // One replay at a time per message, and none of a message accepted meanwhile.
        const rows: Array<{ status: string }> = await m.query(
          `SELECT status FROM inbound_messages WHERE id = $1 FOR UPDATE`,
          [message.id],
        );
        if (rows[0]?.status !== 'rejected') return null;
        const r = await this.intake.store(parsed, { ...ctx, manager: m, inboundMessageId: message.id });
        await m.query(`UPDATE inbound_messages SET status = 'accepted', error = NULL WHERE id = $1`, [message.id]);
        return r;
      });
    } catch (err) {
      if (err instanceof FhirOperationError && err.status < 500) {
        const error = refusalText(err);
        await this.repo.refusedAgain(message.id, error);
        log.info(
          { inboundId: message.id, controlId: message.controlId },
          'refused ServiceRequest replayed: still refused',
        );
        return { ok: false, message: `Still refused: ${error}` };
      }
      if (err instanceof EhrHttpError) return { ok: false, message: `The EHR could not be read: ${err.message}` };
      throw err;
    }
    if (!taken) return { ok: false, message: 'This message was replayed or accepted meanwhile' };
    await this.intake.afterCommitOf([taken]);
    log.info(
      { inboundId: message.id, controlId: message.controlId, orderId: taken.order.id, created: taken.created },
      'refused ServiceRequest replayed',
    );
    const order = taken.order.fillerOrderNumber;
    const what = taken.created
      ? `order ${order} created${taken.held ? ' (on hold, as the ServiceRequest is)' : ''}`
      : taken.cancelled
        ? `order ${order} cancelled`
        : taken.released
          ? `order ${order} released`
          : taken.held
            ? `order ${order} put on hold`
            : `the order exists already (${order})`;
    return { ok: true, message: `Replayed: ${what}, from ServiceRequest/${id} as the EHR has it now` };
  }

  private client(): EhrClient {
    if (!this.ehr) {
      throw new FhirOperationError(
        503,
        operationOutcome(
          'error',
          'not-supported',
          'No EHR is configured (FHIR_EHR_BASE_URL): notifications cannot be followed',
        ),
      );
    }
    return this.ehr;
  }

  async handle(n: SubscriptionNotification): Promise<NotificationResult> {
    const result: NotificationResult = {
      kind: n.shape,
      ordersCreated: [],
      ordersExisting: [],
      rejected: 0,
      duplicates: 0,
      gaps: 0,
    };
    try {
      switch (n.shape) {
        case 'empty':
          await this.catchUp(result);
          break;
        case 'resource':
          if (n.resource.resourceType === 'ServiceRequest' && n.resource.id) await this.fromEhr(n.resource.id, result);
          break;
        case 'hapi':
          if (n.resourceType === 'ServiceRequest') await this.fromEhr(n.id, result);
          break;
        case 'backport':
          await this.backport(n, result);
          break;
      }
    } catch (err) {
      if (err instanceof EhrHttpError) {
        log.warn({ status: err.status, err: err.message }, 'EHR read failed while following a notification');
        // 503 makes the EHR send the notification again later.
        throw new FhirOperationError(503, operationOutcome('error', 'transient', `EHR read failed: ${err.message}`));
      }
      throw err;
    }
    log.info(
      {
        kind: result.kind,
        created: result.ordersCreated.length,
        existing: result.ordersExisting.length,
        rejected: result.rejected,
        duplicates: result.duplicates,
        gaps: result.gaps,
      },
      'subscription notification handled',
    );
    return result;
  }

  private async backport(
    n: Extract<SubscriptionNotification, { shape: 'backport' }>,
    result: NotificationResult,
  ): Promise<void> {
    const s = n.status;
    result.kind = `backport:${s.type}`;
    switch (s.type) {
      case 'handshake':
        await this.events.touch(s.subscription, 'handshake');
        return;
      case 'heartbeat':
      case 'query-status': {
        const missing = await this.events.touch(s.subscription, 'heartbeat', s.eventsSinceStart);
        if (missing > 0) {
          result.gaps += missing;
          log.warn({ subscription: s.subscription, missing }, 'heartbeat shows missed events: catching up');
          await this.catchUp(result);
          await this.events.caughtUp(s.subscription, s.eventsSinceStart!);
        }
        return;
      }
      case 'event-notification':
      case 'query-event': {
        let needCatchUp = false;
        const focuses: string[] = [];
        const recorded: number[] = [];
        for (const e of s.events) {
          const check = await this.events.record(s.subscription, e.eventNumber, e.focus);
          if (check.duplicate) {
            result.duplicates++;
            continue;
          }
          recorded.push(e.eventNumber);
          if (check.gap > 0) {
            result.gaps += check.gap;
            log.warn(
              { subscription: s.subscription, eventNumber: e.eventNumber, gap: check.gap },
              'event gap: catching up',
            );
            needCatchUp = true;
          }
          if (e.focus) focuses.push(e.focus);
          else needCatchUp = true;
        }
        try {
          for (const f of focuses) {
            const m = /(?:^|\/)ServiceRequest\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/.*)?$/.exec(f);
            if (m) await this.fromEhr(m[1]!, result);
          }
          if (needCatchUp) await this.catchUp(result);
        } catch (err) {
          // Not taken in (EHR or database unavailable): the events are forgotten so the resend the error
          // answer asks for is handled, not dropped as a duplicate.
          await this.events.forget(s.subscription, recorded);
          throw err;
        }
        return;
      }
    }
  }

  /** Reads a ServiceRequest from the EHR and takes it in. */
  private async fromEhr(id: string, result: NotificationResult): Promise<void> {
    const ehr = this.client();
    const sr = (await ehr.resolve(`ServiceRequest/${id}`)) as ServiceRequest | undefined;
    if (!sr) {
      // Not readable yet (a replica behind the write, access not granted yet) or gone: answered like a failed
      // read, 503, so the EHR sends the notification again; a Backport event is then forgotten (see
      // `backport`), not left recorded as seen with no order.
      log.warn({ serviceRequest: `ServiceRequest/${id}` }, 'notified ServiceRequest not found on the EHR');
      throw new FhirOperationError(
        503,
        operationOutcome(
          'error',
          'transient',
          `ServiceRequest/${id} was not found on the EHR; send the notification again once it can be read`,
        ),
      );
    }
    await this.take(sr, result);
  }

  private async take(sr: ServiceRequest, result: NotificationResult): Promise<void> {
    const ehr = this.client();
    try {
      const r = await this.intake.execute(sr, { ...intakeContextFor(ehr), raw: JSON.stringify(sr) });
      (r.created ? result.ordersCreated : result.ordersExisting).push(r.order.id);
    } catch (err) {
      // Our criteria include revoked (and entered-in-error) ServiceRequests, to learn of cancellations. One we
      // never took in, or one whose order is already done (completed, its result delivered; every catch-up
      // meets it again), has nothing left to stop: not a rejection.
      const why = err instanceof FhirOperationError ? err.outcome.issue?.[0]?.diagnostics : undefined;
      if (cancels(sr.status) && (why === NO_ORDER_TO_CANCEL || why?.endsWith(TOO_LATE_TO_CANCEL))) {
        log.info(
          { serviceRequest: `ServiceRequest/${sr.id}`, order: why === NO_ORDER_TO_CANCEL ? 'none of ours' : 'done' },
          'cancelling ServiceRequest with nothing to stop',
        );
        return;
      }
      // A hold for an order already at Hemato.AI (or done) cannot be applied: the order goes on. Not the EHR's error.
      // (A new on-hold ServiceRequest refused for what it says is kept below, as any other.)
      if (err instanceof HoldRefusedError) {
        log.info(
          { serviceRequest: `ServiceRequest/${sr.id}` },
          'on-hold ServiceRequest whose order can no longer be held',
        );
        return;
      }
      if (err instanceof FhirOperationError && err.status < 500) {
        // The EHR cannot fix this by resending, and is not told (a notification is not the order's request): kept
        // as a refused inbound message, for the Health page (and its Replay once the cause is fixed).
        result.rejected++;
        const controlId = refusedControlId(sr);
        log.warn(
          { serviceRequest: `ServiceRequest/${sr.id}`, controlId, status: err.status, issue: why },
          'ServiceRequest from the EHR not accepted',
        );
        await this.repo.recordRefused({
          sender: SUBSCRIPTION_SENDER,
          controlId,
          type: 'ServiceRequest',
          raw: JSON.stringify(sr),
          error: refusalText(err),
        });
        return;
      }
      throw err;
    }
  }

  /**
   * Our ServiceRequests on the EHR (`criteria`), newest first, page after page up to FHIR_CATCHUP_MAX;
   * the ones we know are answered from the database. A failing page fails the notification (503: the
   * EHR sends it again and the catch-up runs again; what was taken in stays taken).
   */
  private async catchUp(result: NotificationResult): Promise<void> {
    const ehr = this.client();
    const max = this.config.fhir.FHIR_CATCHUP_MAX;
    let read = 0;
    let page: Bundle<ServiceRequest> | undefined = await ehr.search<ServiceRequest>('ServiceRequest', {
      ...criteriaParams(this.criteria),
      _count: String(Math.min(this.config.fhir.FHIR_CATCHUP_PAGE_SIZE, max)),
      _sort: '-_lastUpdated',
    });
    while (page) {
      for (const e of page.entry ?? []) {
        if (e.resource?.resourceType !== 'ServiceRequest' || (e.search?.mode && e.search.mode !== 'match')) continue;
        if (read >= max) break;
        read++;
        await this.take(e.resource, result);
      }
      if (read >= max) {
        if (page.link?.some((l) => l.relation === 'next')) {
          log.warn({ read, max }, 'catch-up stopped at FHIR_CATCHUP_MAX ServiceRequests; older ones were not read');
        }
        break;
      }
      page = await ehr.nextPage(page);
    }
  }

  /** The answer to the notifier. */
  static outcomeOf(r: NotificationResult): OperationOutcome {
    return operationOutcome(
      'information',
      'informational',
      `${r.kind}: ${r.ordersCreated.length} order(s) created, ${r.ordersExisting.length} already known, ${r.rejected} rejected, ${r.duplicates} duplicate event(s), ${r.gaps} missed event(s)`,
    );
  }
}
