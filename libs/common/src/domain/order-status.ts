/**
 * Lifecycle states of an order, stored as text in `orders.status`. The allowed moves between
 * them live in `@hemato/orders` (one place); this is only the vocabulary, shared with persistence.
 */
export enum OrderStatus {
  Received = 'received',
  AwaitingImages = 'awaiting_images',
  Ready = 'ready',
  StudyCreated = 'study_created',
  Uploading = 'uploading',
  TasksRequested = 'tasks_requested',
  Processing = 'processing',
  ReportReady = 'report_ready',
  Delivering = 'delivering',
  Completed = 'completed',
  Rejected = 'rejected',
  Cancelled = 'cancelled',
  Failed = 'failed',
  /**
   * Held by the hospital (FHIR ServiceRequest `on-hold`, HL7 ORC-1 `HD`, the dashboard) before anything went to
   * Hemato.AI: no step runs until it is released (back to `received`, whose step picks up where it was).
   */
  OnHold = 'on_hold',
}

export const TERMINAL_STATUSES: readonly OrderStatus[] = [
  OrderStatus.Completed,
  OrderStatus.Rejected,
  OrderStatus.Cancelled,
];

/**
 * Why a failed order failed, where something acts on the cause (`orders.failure_code`, kept only while
 * the order is failed; `failure_reason` says it in words). Null: any other cause.
 */
export enum OrderFailureCode {
  /** Hemato.AI had not finished by POLL_DEADLINE_MS: a report it calls back later is still taken up. */
  PollDeadline = 'poll_deadline',
}

export enum SourceChannel {
  Hl7 = 'hl7',
  Fhir = 'fhir',
  Api = 'api',
}

export enum DeliveryTarget {
  Hl7 = 'hl7',
  Fhir = 'fhir',
}

export enum DeliveryStatus {
  Pending = 'pending',
  Sending = 'sending',
  Acknowledged = 'acknowledged',
  Failed = 'failed',
  /** A newer report version was stored before this one was acknowledged: it is never sent (the newer one is). */
  Superseded = 'superseded',
}
