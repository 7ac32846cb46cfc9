import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import { createHematoClientFromConfig, type HematoClient } from '@hemato/hemato-client';
import { PhiGuard } from '@hemato/privacy';

/**
 * The one Hemato.AI client of the process, built from config, with the PHI guard as its
 * `beforeRequest` hook: every request is checked against the current order's patient.
 * Created on first use, so a process that never talks to Hemato.AI needs no credentials.
 */
@Injectable()
export class HematoClientHolder implements OnModuleDestroy {
  private client?: HematoClient;

  constructor(
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'hemato'>,
    private readonly guard: PhiGuard,
  ) {}

  get(): HematoClient {
    this.client ??= createHematoClientFromConfig(this.config.hemato, { beforeRequest: this.guard.hook });
    return this.client;
  }

  async onModuleDestroy(): Promise<void> {
    await this.client?.close();
  }
}
