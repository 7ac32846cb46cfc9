import { Module } from '@nestjs/common';
import { OrderActionsService } from '@hemato/orders';
import { HealthModule } from '../health/health.module';
import { AdminActionsController } from './actions/admin-actions.controller';
import { ORDER_ACTIONS } from './actions/order-actions.port';
import { AuditController } from './audit/audit.controller';
import { AuditService } from './audit/audit.service';
import { AdminAuthController } from './auth/admin-auth.controller';
import { AdminAuthGuard } from './auth/admin-auth.guard';
import { AdminAuthService } from './auth/admin-auth.service';
import { AdminUsersRepository } from './auth/admin-users.repository';
import { AdminEventsController } from './events/admin-events.controller';
import { OrderChangeListener } from './events/order-change-listener';
import { AdminHealthController } from './health/admin-health.controller';
import { AdminHealthService } from './health/admin-health.service';
import { AdminInboundController, AdminOrdersController } from './orders/admin-orders.controller';
import { AdminOrdersRepository } from './orders/admin-orders.repository';
import { AdminOrdersService } from './orders/admin-orders.service';
import { AdminPatientsController } from './patients/admin-patients.controller';
import { DashboardStaticController } from './static/dashboard-static.controller';

/** The admin API (/api/admin/*) and the dashboard it serves (/admin). */
@Module({
  imports: [HealthModule],
  controllers: [
    AdminAuthController,
    AdminOrdersController,
    AdminInboundController,
    AdminPatientsController,
    AdminEventsController,
    AdminHealthController,
    AuditController,
    AdminActionsController,
    DashboardStaticController,
  ],
  providers: [
    AdminUsersRepository,
    AdminAuthService,
    AdminAuthGuard,
    AuditService,
    AdminOrdersRepository,
    AdminOrdersService,
    OrderChangeListener,
    AdminHealthService,
    // The lifecycle's actions, behind the port the admin API was written against.
    { provide: ORDER_ACTIONS, useExisting: OrderActionsService },
  ],
  exports: [AdminAuthService, AuditService],
})
export class AdminModule {}
