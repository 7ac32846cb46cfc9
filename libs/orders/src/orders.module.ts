import { Global, Module } from '@nestjs/common';
import { PrivacyModule } from '@hemato/privacy';
import { orderCodeTableProvider } from './codes/order-code-table.provider';
import { fileStoreProvider, FILE_STORE } from './images/file-store.provider';
import { OrderIntakeService } from './intake/order-intake.service';
import { OrderTransitions } from './lifecycle/order-transitions.service';
import { OrderCodeTable } from './codes/order-code-table';
import { StartOrderUseCase } from './lifecycle/start-order.use-case';

/** The order lifecycle's shared services, for gateway (intake) and worker (steps) alike. */
@Global()
@Module({
  imports: [PrivacyModule],
  providers: [orderCodeTableProvider, fileStoreProvider, OrderIntakeService, OrderTransitions, StartOrderUseCase],
  exports: [OrderCodeTable, FILE_STORE, OrderIntakeService, OrderTransitions, StartOrderUseCase],
})
export class OrdersModule {}
