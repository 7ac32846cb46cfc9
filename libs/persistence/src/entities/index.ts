import { AdminSessionEntity } from './admin-session.entity';
import { AdminUserEntity, type AdminRole } from './admin-user.entity';
import { AuditLogEntity } from './audit-log.entity';
import { DeliveryEntity } from './delivery.entity';
import { ImageFileEntity } from './image-file.entity';
import { InboundMessageEntity } from './inbound-message.entity';
import { OrderEventEntity } from './order-event.entity';
import { OrderEntity } from './order.entity';
import { PatientProxyEntity } from './patient-proxy.entity';
import { ReportEntity } from './report.entity';

export {
  AdminSessionEntity,
  AdminUserEntity,
  AuditLogEntity,
  DeliveryEntity,
  ImageFileEntity,
  InboundMessageEntity,
  OrderEntity,
  OrderEventEntity,
  PatientProxyEntity,
  ReportEntity,
};

export const ENTITIES = [
  PatientProxyEntity,
  InboundMessageEntity,
  OrderEntity,
  OrderEventEntity,
  ImageFileEntity,
  ReportEntity,
  DeliveryEntity,
  AdminUserEntity,
  AdminSessionEntity,
  AuditLogEntity,
];

export type { AdminRole };
