import { DeliveryEntity } from './delivery.entity';
import { ImageFileEntity } from './image-file.entity';
import { InboundMessageEntity } from './inbound-message.entity';
import { OrderEventEntity } from './order-event.entity';
import { OrderEntity } from './order.entity';
import { PatientProxyEntity } from './patient-proxy.entity';
import { ReportEntity } from './report.entity';

export {
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
];
