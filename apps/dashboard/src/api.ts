/** The admin API, same origin, session cookie. A 401 sends the user to the sign-in page. */

export type Role = 'admin' | 'viewer';
export interface Me {
  id: string;
  email: string;
  role: Role;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let onUnauthorized: () => void = () => undefined;
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

export async function api<T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> {
  const { json, ...rest } = init;
  const res = await fetch(path, {
    credentials: 'same-origin',
    ...rest,
    headers: {
      accept: 'application/json',
      ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
      ...rest.headers,
    },
    body: json !== undefined ? JSON.stringify(json) : rest.body,
  });
  if (res.status === 401 && !path.endsWith('/auth/login')) onUnauthorized();
  const text = await res.text();
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = text;
  }
  if (!res.ok) {
    const message =
      body && typeof body === 'object' && 'message' in body
        ? String((body as { message: unknown }).message)
        : res.statusText;
    throw new ApiError(res.status, message);
  }
  return body as T;
}

export interface OrderRow {
  id: string;
  fillerOrderNumber: string;
  placerOrderNumber: string | null;
  status: string;
  sourceChannel: string;
  proxyId: string | null;
  testCode: string | null;
  testDisplay: string | null;
  hematoProgress: number | null;
  failedStep: string | null;
  failureReason: string | null;
  createdAt: string;
  statusChangedAt: string;
}

export interface HeatSpot {
  finding: string;
  x: number;
  y: number;
  r: number;
}

export interface OrderDetail {
  order: Record<string, any>;
  patient: { name: string; identifiers: string; birthDate: string } | null;
  timeline: Array<{
    id: string;
    at: string;
    type: string;
    from_status: string | null;
    to_status: string | null;
    actor: string;
    detail: Record<string, unknown>;
  }>;
  images: Array<{
    id: string;
    name: string;
    status: string;
    media_type: string | null;
    size_bytes: string | null;
    url: string;
    spots: HeatSpot[];
    error: string | null;
  }>;
  report: { id: string; version: number; studyId: string; fetchedAt: string; results: ReportResults } | null;
  reportVersions: number[];
  deliveries: Array<{
    id: string;
    report_version: number;
    target: string;
    status: string;
    attempts: number;
    last_attempt_at: string | null;
    outcome: string | null;
    response: string | null;
    control_id: string | null;
    /** Where an HL7 result was sent (mllp://host:port); null before it was. */
    destination?: string | null;
    error: string | null;
  }>;
  inbound: {
    id: string;
    channel: string;
    sender: string;
    control_id: string;
    message_type: string | null;
    status: string;
    ack_code: string | null;
    ack: string | null;
    error: string | null;
    received_at: string;
    /** Erased under the retention policy (RETENTION_DAYS): no body, no ACK. */
    purged_at: string | null;
    rawMasked: string;
  } | null;
}

export interface ReportResults {
  pbs_study_id?: string;
  feature_statistics?: Record<string, { value: string | number; unit: string }>;
  morphological_findings?: Record<string, { count: string | number; heat_map?: unknown[] }>;
  diagnostic_report?: {
    differential_diagnosis?: Array<{
      'icd10-code': string;
      'english-long'?: string;
      'english-short'?: string;
      confidence: string | number;
      score: string | number;
      'clinical-significance'?: string;
    }>;
  };
  pathology_report?: string;
}

export interface Identity {
  primary?: { authority: string; value: string };
  identifiers?: Array<{ authority?: string; value: string; type?: string }>;
  name?: { family?: string; given?: string[]; text?: string };
  birthDate?: string;
  sex?: string;
}

export const STATUSES = [
  'received',
  'awaiting_images',
  'on_hold',
  'ready',
  'study_created',
  'uploading',
  'tasks_requested',
  'processing',
  'report_ready',
  'delivering',
  'completed',
  'failed',
  'rejected',
  'cancelled',
] as const;

export const CHANNELS = ['hl7', 'fhir', 'api'] as const;

export function fmtTime(s: string | null | undefined): string {
  if (!s) return '—';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

/** HL7 separates segments with CR only: shown one per line. */
export function lines(text: string): string {
  return text.replace(/\r\n?/g, '\n');
}
