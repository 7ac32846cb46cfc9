import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig } from '@hemato/common';
import { OUR_SUBSCRIPTION_TAG, buildOurSubscription, ourServiceRequestCriteria, type EhrClient } from '@hemato/fhir';
import { OrderCodeTable } from '@hemato/orders';
import type { Subscription } from '@medplum/fhirtypes';
import { EHR_CLIENT } from './ehr-client.provider';
import { FhirAuthService } from './fhir-auth.guard';

const log = createLogger('fhir-subscription-manager');
const CHECK_INTERVAL_MS = 5 * 60_000;

/**
 * With FHIR_SUBSCRIPTION_AUTO_CREATE, keeps our rest-hook Subscription on the EHR: created at start
 * when missing, re-created when the EHR turned it off or put it in error. Never blocks start-up.
 */
@Injectable()
export class FhirSubscriptionManager implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer?: NodeJS.Timeout;
  /** Which ServiceRequests the EHR should notify us of. */
  readonly criteria: string;

  constructor(
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'fhir' | 'core'>,
    @Inject(EHR_CLIENT) private readonly ehr: EhrClient | null,
    @Inject(OrderCodeTable) codes: OrderCodeTable,
    private readonly auth: FhirAuthService,
  ) {
    this.criteria = ourServiceRequestCriteria(config.fhir.FHIR_SUBSCRIPTION_CRITERIA, codes.entries());
  }

  onApplicationBootstrap(): void {
    if (!this.config.fhir.FHIR_SUBSCRIPTION_AUTO_CREATE || !this.ehr) return;
    if (!this.config.core.PUBLIC_BASE_URL) {
      log.warn(
        {},
        'FHIR_SUBSCRIPTION_AUTO_CREATE needs PUBLIC_BASE_URL (where the EHR reaches us): not creating a Subscription',
      );
      return;
    }
    if (!this.auth.subscriptionHookKey() && !this.config.fhir.FHIR_SUBSCRIPTION_SECRET) {
      log.warn(
        {},
        'no FHIR API key is allowed on the Subscription hook (FHIR_SUBSCRIPTION_CLIENTS) and no FHIR_SUBSCRIPTION_SECRET is set: the Subscription we create carries no credential the hook accepts',
      );
    }
    void this.ensure().catch((err: unknown) =>
      log.warn({ err: (err as Error).message }, 'could not ensure the EHR Subscription'),
    );
    this.timer = setInterval(() => {
      void this.ensure().catch((err: unknown) =>
        log.warn({ err: (err as Error).message }, 'could not ensure the EHR Subscription'),
      );
    }, CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Where the EHR sends notifications. */
  endpoint(): string {
    const base = (this.config.core.PUBLIC_BASE_URL ?? '').replace(/\/$/, '');
    return `${base}/fhir/subscription-hook`;
  }

  /** Finds our Subscription on the EHR; creates one when none is active. Returns the one in use. */
  async ensure(): Promise<Subscription> {
    if (!this.ehr) throw new Error('No EHR configured');
    const found = await this.ehr.search<Subscription>('Subscription', {
      _tag: `${OUR_SUBSCRIPTION_TAG.system}|${OUR_SUBSCRIPTION_TAG.code}`,
    });
    const ours = (found.entry ?? []).map((e) => e.resource!).filter((s) => s?.channel?.endpoint === this.endpoint());
    const live = ours.find((s) => s.status === 'active' || s.status === 'requested');
    if (live && live.criteria === this.criteria) return live;
    if (live?.id) {
      // The order codes (or FHIR_SUBSCRIPTION_CRITERIA) changed since it was made: the EHR is told the new ones.
      const updated = await this.ehr.update({ ...live, id: live.id, criteria: this.criteria, status: 'requested' });
      log.info({ subscription: `Subscription/${live.id}` }, 'updated the criteria of our Subscription on the EHR');
      return updated;
    }
    // A key the hook accepts (the first such in FHIR_API_KEYS), not merely the first key.
    const key = this.auth.subscriptionHookKey();
    const created = await this.ehr.create(
      buildOurSubscription({
        endpoint: this.endpoint(),
        criteria: this.criteria,
        secret: this.config.fhir.FHIR_SUBSCRIPTION_SECRET,
        authorizationHeader: key ? `Authorization: Bearer ${key}` : undefined,
      }),
    );
    log.info(
      { subscription: `Subscription/${created.id}`, replaced: ours.length },
      'created our Subscription on the EHR',
    );
    return created;
  }
}
