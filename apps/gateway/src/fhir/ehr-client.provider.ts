import type { Provider } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import { EhrClient } from '@hemato/fhir';

/** Injection token for the EHR client (`EhrClient | null`: null when FHIR_EHR_BASE_URL is not set). */
export const EHR_CLIENT = Symbol('EHR_CLIENT');

export const ehrClientProvider: Provider = {
  provide: EHR_CLIENT,
  inject: [APP_CONFIG],
  useFactory: (config: Pick<AppConfig, 'fhir'>) => EhrClient.fromConfig(config.fhir),
};
