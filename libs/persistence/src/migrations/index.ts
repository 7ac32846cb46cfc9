import { InitialSchema1764270000000 } from './1764270000000-initial-schema';
import { AdminDashboard1764280000000 } from './1764280000000-admin-dashboard';
import { FhirSubscriptions1764290000000 } from './1764290000000-fhir-subscriptions';
import { LeanOrderIndexes1764300000000 } from './1764300000000-lean-order-indexes';
import { OrderSourceClient1764310000000 } from './1764310000000-order-source-client';
import { StatementLevelOrderNotify1764320000000 } from './1764320000000-statement-level-order-notify';
import { FhirIdentifierValueIndex1764330000000 } from './1764330000000-fhir-identifier-value-index';
import { InboundControlIdIndex1764340000000 } from './1764340000000-inbound-control-id-index';
import { OrderFailureCode1764350000000 } from './1764350000000-order-failure-code';
import { DeliveryDestination1764360000000 } from './1764360000000-delivery-destination';
import { Retention1764370000000 } from './1764370000000-retention';
import { AuditLogNoTruncate1764375000000 } from './1764375000000-audit-log-no-truncate';
import { ImageDeclaredContent1764380000000 } from './1764380000000-image-declared-content';
import { DeliverySeparateAck1764390000000 } from './1764390000000-delivery-separate-ack';

/** Every migration, oldest first. Landed migrations are never edited: add a new class. */
export const MIGRATIONS = [
  InitialSchema1764270000000,
  AdminDashboard1764280000000,
  FhirSubscriptions1764290000000,
  LeanOrderIndexes1764300000000,
  OrderSourceClient1764310000000,
  StatementLevelOrderNotify1764320000000,
  FhirIdentifierValueIndex1764330000000,
  InboundControlIdIndex1764340000000,
  OrderFailureCode1764350000000,
  DeliveryDestination1764360000000,
  Retention1764370000000,
  AuditLogNoTruncate1764375000000,
  ImageDeclaredContent1764380000000,
  DeliverySeparateAck1764390000000,
];
