import { AsyncLocalStorage } from 'node:async_hooks';
import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { assertNoPhi, type OutboundRequest } from './phi-guard';
import type { PatientIdentity } from './patient-identity';
import { PatientIdentityReader } from './patient-proxy.service';

const current = new AsyncLocalStorage<{ identity: PatientIdentity | null; orderId: string }>();

/**
 * The PHI guard, placed on the one path to the Hemato.AI client. A caller runs its Hemato.AI calls
 * for an order inside `guard.forOrder(...)`; the client's `beforeRequest` hook (`PhiGuard.hook`)
 * then checks every outgoing request against that order's patient. The caller never sees the
 * identity: the guard reads it itself. A call made outside `forOrder` is refused: no request toward
 * Hemato.AI leaves unchecked.
 */
@Injectable()
export class PhiGuard {
  constructor(
    private readonly ds: DataSource,
    private readonly reader: PatientIdentityReader,
  ) {}

  /** Runs `fn` with the patient of this order as the guard's reference. */
  async forOrder<T>(order: { id: string; patientProxyId: string | null }, fn: () => Promise<T>): Promise<T> {
    const identity = order.patientProxyId ? await this.reader.read(this.ds.manager, order.patientProxyId) : null;
    return current.run({ identity, orderId: order.id }, fn);
  }

  /** Runs `fn` for calls that concern no patient (heartbeat, hello). */
  async withoutPatient<T>(fn: () => Promise<T>): Promise<T> {
    return current.run({ identity: null, orderId: '-' }, fn);
  }

  /** The `beforeRequest` hook for the Hemato.AI client. */
  readonly hook = (request: OutboundRequest): void => {
    const ctx = current.getStore();
    if (!ctx) throw new Error('Hemato.AI call outside a PHI guard context: refused');
    if (ctx.identity) assertNoPhi(request, ctx.identity);
  };
}
