import type { Provider } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import { OrderCodeTable } from './order-code-table';

export const orderCodeTableProvider: Provider = {
  provide: OrderCodeTable,
  inject: [APP_CONFIG],
  useFactory: (config: Pick<AppConfig, 'hemato'>) => new OrderCodeTable(config.hemato.HEMATO_ORDER_CODES),
};
