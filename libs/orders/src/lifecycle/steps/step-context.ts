import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, DomainError, DomainErrorCode, OrderStatus, type AppConfig } from '@hemato/common';
import { HematoApiError } from '@hemato/hemato-client';
import { OrderEntity } from '@hemato/persistence';
import { PatientProxyService, PhiGuard } from '@hemato/privacy';
import { UnrecoverableError } from 'bullmq';
import { DataSource } from 'typeorm';
import { FILE_STORE } from '../../images/file-store.provider';
import type { FileStore } from '../../images/file-store';
import { HematoClientHolder } from '../../hemato/hemato-client.provider';
import { publicBaseUrl } from '../../hemato/signed-urls';
import { LifecycleQueue } from '../lifecycle-queue';
import { OrderTransitions } from '../order-transitions.service';

/** Everything a lifecycle step needs, injected once. */
@Injectable()
export class StepContext {
  constructor(
    readonly ds: DataSource,
    readonly transitions: OrderTransitions,
    readonly queue: LifecycleQueue,
    readonly hemato: HematoClientHolder,
    readonly guard: PhiGuard,
    readonly proxies: PatientProxyService,
    @Inject(FILE_STORE) readonly files: FileStore,
    @Inject(APP_CONFIG) readonly config: AppConfig,
  ) {}

  async order(orderId: string): Promise<OrderEntity | null> {
    return this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
  }

  /** Where Hemato.AI reaches this gateway (callback and workflow-2 URLs). */
  publicBaseUrl(): string {
    return publicBaseUrl(this.config.core);
  }

  get workflow(): '1' | '2' {
    return this.config.hemato.HEMATO_WORKFLOW;
  }

  staleMs(): number {
    return this.config.orders.STALE_AFTER_MS;
  }
}

/**
 * Hemato.AI answers that a retry cannot fix (4xx other than 401/408/429, a hash mismatch, a PHI refusal,
 * credentials refused at login or after a fresh token) end the job at once instead of burning its attempts.
 */
export function classifyStepError(err: unknown): Error {
  if (err instanceof DomainError) {
    return err.code === DomainErrorCode.Unavailable ? err : new UnrecoverableError(err.message);
  }
  if (err instanceof HematoApiError) {
    if (err.authRefused) {
      // No retry: the same credentials are refused again, and repeated wrong logins may lock the account.
      return new UnrecoverableError(
        `Hemato.AI refused our credentials (HTTP ${err.status} at ${err.method} ${err.path}): check HEMATO_USER and ` +
          'HEMATO_PASSWORD / HEMATO_PASS_HASH (or HEMATO_KEY_ID / HEMATO_ISSUER / HEMATO_SUBJECT and the registered key); ' +
          'not retried, so a wrong password cannot lock the Hemato.AI account',
      );
    }
    const s = err.status;
    const permanent =
      err.kind === 'file_id_mismatch' ||
      err.kind === 'study_mismatch' ||
      err.kind === 'config' ||
      err.kind === 'invalid_argument' ||
      (s >= 400 && s < 500 && ![401, 408, 409, 429].includes(s));
    const message = err.user_message ? `${err.message} (${err.user_message})` : err.message;
    if (permanent) return new UnrecoverableError(message);
    // Hemato.AI's Retry-After (a 429 or 503 asking for longer than the client waits by itself) travels with
    // the error: the worker waits that long before the step's next attempt (see honourRetryAfter).
    return Object.assign(new Error(message), err.retryAfterMs !== undefined ? { retryAfterMs: err.retryAfterMs } : {});
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** States in which nothing more should happen to an order. */
export const STOPPED: readonly OrderStatus[] = [OrderStatus.Cancelled, OrderStatus.Rejected, OrderStatus.Failed];
