import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  APP_CONFIG,
  DomainError,
  DomainErrorCode,
  OrderStatus,
  SourceChannel,
  TERMINAL_STATUSES,
  createLogger,
  type AppConfig,
} from '@hemato/common';
import {
  cancels,
  FhirOperationError,
  operationOutcome,
  parseServiceRequest,
  serviceRequestKey,
  type ParsedServiceRequest,
  type ServiceRequestKey,
  type ResourceResolver,
} from '@hemato/fhir';
import { OrderCodeTable, OrderHolds, OrderIntakeService, OrderTransitions, type HoldOutcome } from '@hemato/orders';
import type { OrderEntity } from '@hemato/persistence';
import type { ServiceRequest } from '@medplum/fhirtypes';
import type { EntityManager } from 'typeorm';
import { mayAccess, type OrderCaller } from './fhir-auth.guard';
import { FhirOrdersRepository } from './fhir-orders.repository';

const log = createLogger('fhir-intake');

/** The refusal of a revoked ServiceRequest whose order we never had (nothing to cancel). */
export const NO_ORDER_TO_CANCEL = 'There is no order with this identifier to cancel';
/** The end of the refusal to cancel an order that is already done (its result may have been delivered). */
export const TOO_LATE_TO_CANCEL = 'and can no longer be cancelled';

export interface IntakeContext {
  resolver: ResourceResolver;
  /**
   * Who sends it: its id goes on the order (source_client), the inbound message (sender) and the timeline
   * (actor `fhir:<id>`); a repeat or a revocation reaches only an order it may access.
   */
  caller: OrderCaller;
  ifNoneExist?: string;
  /** EHR base for ServiceRequests read from the EHR (subscription path). */
  ehrBaseUrl?: string;
  /** FHIRPath prefix for error expressions. */
  path?: string;
  /** The request body as received, recorded in inbound_messages. */
  raw?: string;
  /** Caller's transaction (Bundle of type transaction); the caller then runs `afterCommit`. */
  manager?: EntityManager;
  /** The inbound message already kept for it (a refused one replayed): the order names it, none is recorded. */
  inboundMessageId?: string;
  /** Who the timeline names instead of the client (the admin who replayed a refused ServiceRequest). */
  actor?: string;
}

export interface IntakeResult {
  order: OrderEntity;
  /** False when an order with the same identifier already existed (idempotent repeat). */
  created: boolean;
  cancelled?: boolean;
  /** The ServiceRequest is `on-hold`: the order was held (or already was), and is not started. */
  held?: boolean;
  /** The ServiceRequest is `active` again: the held order was released (started after commit). */
  released?: boolean;
}

/**
 * The refusal (422) of a hold for an order past the point where it can be held: its own type, so the Subscription
 * path tells it (the order goes on, nothing to keep) from a ServiceRequest refused for what it says.
 */
export class HoldRefusedError extends FhirOperationError {
  constructor(outcome: HoldOutcome, ctx: IntakeContext) {
    const e = FhirOperationError.unprocessable(outcome.message, `${ctx.path ?? 'ServiceRequest'}.status`);
    super(e.status, e.outcome);
  }
}

/** The timeline's actor: the channel and the client, so the dashboard says which client ordered or cancelled. */
function actorOf(ctx: IntakeContext): string {
  return ctx.actor ?? `fhir:${ctx.caller.id}`;
}

function isUniqueViolation(err: unknown): boolean {
  return (
    (err as { code?: string; driverError?: { code?: string } })?.driverError?.code === '23505' ||
    (err as { code?: string })?.code === '23505'
  );
}

/**
 * One ServiceRequest in, one order stored: parse and check it, answer a repeated identifier with
 * the existing order, cancel on `revoked`, else store it with its patient, images and timeline
 * event and start the lifecycle once committed.
 */
@Injectable()
export class FhirOrderIntakeUseCase {
  constructor(
    private readonly repo: FhirOrdersRepository,
    private readonly intake: OrderIntakeService,
    private readonly transitions: OrderTransitions,
    private readonly holds: OrderHolds,
    @Inject(OrderCodeTable) private readonly codes: OrderCodeTable,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'orders'>,
  ) {}

  /**
   * Parses without storing (for all-or-nothing Bundles: check every entry first), the inline images of an order
   * to store included: a zip is inflated here, before any transaction is opened, letting other requests be
   * served meanwhile (a bomb inflates for seconds before it reaches IMAGE_ZIP_MAX_UNPACKED_BYTES).
   */
  async parse(sr: ServiceRequest, ctx: IntakeContext): Promise<ParsedServiceRequest> {
    const parsed = await parseServiceRequest(sr, {
      codes: this.codes,
      resolver: ctx.resolver,
      ifNoneExist: ctx.ifNoneExist,
      ehrBaseUrl: ctx.ehrBaseUrl,
      sourceAuthority: ctx.caller.id,
      path: ctx.path,
      allowedImageHosts: this.config.orders.IMAGE_URL_ALLOWED_HOSTS,
    });
    // A revocation stores nothing: its images are never looked at.
    if (!cancels(parsed.status)) await this.intake.checkInlineImages(parsed.images);
    return parsed;
  }

  async execute(sr: ServiceRequest, ctx: IntakeContext): Promise<IntakeResult> {
    return (await this.stopExistingFirst(sr, ctx)) ?? this.store(await this.parse(sr, ctx), ctx);
  }

  /**
   * A cancellation or a hold of an order we have acts on it by its identifier alone, before the rest of the
   * resource is checked: the EHR's revoked (or held) version may no longer pass a check its active version passed
   * (a code since unmapped, a Patient no longer there, an image host since dropped from the list), and the order
   * must still stop. Null when it names no order of ours: the full checks then answer as for any request.
   */
  private async stopExistingFirst(sr: ServiceRequest, ctx: IntakeContext): Promise<IntakeResult | null> {
    if (sr?.resourceType !== 'ServiceRequest' || (!cancels(sr.status) && sr.status !== 'on-hold')) return null;
    let key: ServiceRequestKey;
    try {
      key = serviceRequestKey(sr, { ifNoneExist: ctx.ifNoneExist, ehrBaseUrl: ctx.ehrBaseUrl, path: ctx.path });
    } catch {
      return null; // the full checks say what is wrong with it
    }
    const existing = await this.findExisting(key, ctx);
    if (!existing || !mayAccess(ctx.caller, existing)) return null;
    return this.onExisting(existing, { status: sr.status }, ctx);
  }

  /** Stores a parsed order (or finds the existing one). Without `ctx.manager` it also starts the lifecycle. */
  async store(parsed: ParsedServiceRequest, ctx: IntakeContext): Promise<IntakeResult> {
    const existing = await this.findExisting(parsed, ctx);
    // Another client's order is not there for this caller: its revocation finds nothing to cancel.
    if (existing && (mayAccess(ctx.caller, existing) || !cancels(parsed.status)))
      return this.onExisting(existing, parsed, ctx);
    if (cancels(parsed.status)) {
      throw FhirOperationError.unprocessable(NO_ORDER_TO_CANCEL, `${ctx.path ?? 'ServiceRequest'}.status`);
    }
    const create = async (m: EntityManager) => {
      const inboundMessageId = ctx.inboundMessageId
        ? ctx.inboundMessageId
        : ctx.raw
          ? await this.repo.recordInbound(m, {
              sender: ctx.caller.id,
              controlId: randomUUID(),
              type: 'ServiceRequest',
              raw: ctx.raw,
              status: 'accepted',
            })
          : null;
      const order = await this.intake.create(m, {
        sourceChannel: SourceChannel.Fhir,
        sourceClient: ctx.caller.id,
        placerOrderNumber: parsed.placerOrderNumber,
        externalKey: parsed.externalKey,
        patient: parsed.patient,
        test: parsed.test,
        tasks: parsed.tasks,
        details: parsed.details,
        inboundMessageId,
        images: parsed.images,
        actor: actorOf(ctx),
      });
      if (parsed.status !== 'on-hold') return order;
      // Placed on hold: stored with its images, held before any step runs.
      return (await this.holds.hold(order.id, { actor: actorOf(ctx), reason: 'ServiceRequest on-hold', manager: m }))
        .order;
    };
    try {
      const order = ctx.manager ? await create(ctx.manager) : await this.repo.transaction(create);
      const held = parsed.status === 'on-hold';
      if (!ctx.manager && !held) await this.afterCommit([order.id]);
      log.info({ orderId: order.id, client: ctx.caller.id, held }, 'FHIR order stored');
      return { order, created: true, ...(held ? { held } : {}) };
    } catch (err) {
      // Two requests with one identifier at once: the database kept the first; answer with it.
      if (!ctx.manager && parsed.externalKey && isUniqueViolation(err)) {
        const winner = await this.repo.findByExternalKey(parsed.externalKey);
        if (winner) return this.onExisting(winner, parsed, ctx);
      }
      throw err;
    }
  }

  /** The order this one repeats: same identifier key, or for `If-None-Exist: identifier=value` that value under any system. */
  private async findExisting(parsed: ServiceRequestKey, ctx: IntakeContext): Promise<OrderEntity | null> {
    if (parsed.identifierValueAnySystem !== undefined) {
      // Other clients' orders are not there for this caller (they are not counted as matches either).
      const hits = await this.repo.findByIdentifierValue(parsed.identifierValueAnySystem, ctx.caller, 2);
      if (hits.length > 1) {
        // FHIR conditional create: criteria matching more than one resource answer 412.
        throw new FhirOperationError(
          412,
          operationOutcome(
            'error',
            'multiple-matches',
            'If-None-Exist matches more than one order; name the identifier system (identifier=system|value)',
            `${ctx.path ?? 'ServiceRequest'}.identifier`,
          ),
        );
      }
      if (hits[0]) return hits[0];
    }
    return parsed.externalKey ? this.repo.findByExternalKey(parsed.externalKey) : null;
  }

  /**
   * Once a caller's transaction committed: starts the orders it created (not those placed on hold) and those it
   * released.
   */
  async afterCommitOf(results: IntakeResult[]): Promise<void> {
    await this.afterCommit(results.filter((r) => r.created && !r.held).map((r) => r.order.id));
    for (const r of results.filter((x) => x.released)) {
      await this.holds.resume(r.order).catch((err: unknown) => {
        log.warn(
          { orderId: r.order.id, err: (err as Error).message },
          'could not start the released order; left to the reconciler',
        );
      });
    }
  }

  /** Starts the lifecycle of orders stored in a caller's transaction, once it committed. */
  async afterCommit(orderIds: string[]): Promise<void> {
    try {
      await this.intake.afterCommit(orderIds);
    } catch (err) {
      // The orders are committed: the reconciler starts any order whose lifecycle job is missing.
      log.warn({ orderIds, err: (err as Error).message }, 'could not enqueue the order start; left to the reconciler');
    }
  }

  private async onExisting(
    existing: OrderEntity,
    parsed: Pick<ParsedServiceRequest, 'status'>,
    ctx: IntakeContext,
  ): Promise<IntakeResult> {
    if (!mayAccess(ctx.caller, existing)) {
      // The identifier is taken by another client's order: neither it nor its id is shown, and it is not
      // joined; the caller must use an identifier of its own (its own identifier system).
      log.warn({ client: ctx.caller.id }, 'FHIR order refused: identifier already used by another client');
      throw new FhirOperationError(
        409,
        operationOutcome(
          'error',
          'duplicate',
          'This identifier is already used by an order another client placed',
          `${ctx.path ?? 'ServiceRequest'}.identifier`,
        ),
      );
    }
    if (parsed.status === 'on-hold') {
      const held = await this.holds.hold(existing.id, {
        actor: actorOf(ctx),
        reason: 'ServiceRequest on-hold',
        manager: ctx.manager,
      });
      if (held.result === 'too_late') throw new HoldRefusedError(held, ctx);
      return { order: held.order, created: false, held: true };
    }
    if (!cancels(parsed.status)) {
      if (existing.status !== OrderStatus.OnHold) return { order: existing, created: false };
      // `active` again after `on-hold`: released, and (outside a caller's transaction) started again.
      const released = await this.holds.release(existing.id, {
        actor: actorOf(ctx),
        reason: 'ServiceRequest active',
        manager: ctx.manager,
      });
      return { order: released.order, created: false, released: released.result === 'released' };
    }
    if (existing.status === OrderStatus.Cancelled) return { order: existing, created: false, cancelled: true };
    if (TERMINAL_STATUSES.includes(existing.status) || existing.status === OrderStatus.Delivering) {
      throw FhirOperationError.unprocessable(
        `The order is ${existing.status} ${TOO_LATE_TO_CANCEL}`,
        `${ctx.path ?? 'ServiceRequest'}.status`,
      );
    }
    try {
      const order = await this.transitions.move(existing.id, OrderStatus.Cancelled, {
        actor: actorOf(ctx),
        detail: { reason: `ServiceRequest ${parsed.status}` },
        manager: ctx.manager,
      });
      return { order, created: false, cancelled: true };
    } catch (err) {
      if (err instanceof DomainError && err.code === DomainErrorCode.Conflict) {
        // A concurrent revoke cancelled it between our read and the row lock: the same outcome, so a repeated
        // cancel succeeds (idempotent) instead of answering 422.
        const now = await this.repo.findById(existing.id);
        if (now?.status === OrderStatus.Cancelled) return { order: now, created: false, cancelled: true };
        throw FhirOperationError.unprocessable(err.message, `${ctx.path ?? 'ServiceRequest'}.status`);
      }
      throw err;
    }
  }
}
