import type {
  CallbackBody,
  CreateStudyResults,
  Heartbeat,
  ListStudiesResults,
  LoginResults,
  NumLike,
  ReportResults,
  ReportStatus,
  RequestTasksResults,
  StatusResults,
  UploadFileResults,
} from './contract';
import { HematoApiError } from './errors';

/**
 * Typed, parsed views of the API's answers. The wire types (`contract.ts`) keep the reference's
 * field names and its strings-for-numbers; these use camelCase and real numbers.
 */

/** Parses a number sent as a number or a numeric string; anything else is `null`. */
export function parseNumLike(v: NumLike | null | undefined): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v.trim());
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** The user a session login belongs to. */
export interface HematoLoginInfo {
  userId: string;
  email: string;
  screenName: string;
  userName: string;
  /** `login_timestamp` (nanoseconds since the epoch) as a Date; undefined when unparseable. */
  loggedInAt?: Date;
}

/** `/heartbeat`. */
export interface HematoHeartbeat {
  heartbeat: string;
  version: string;
  delta: string;
  /** Unix seconds as the service saw the request. */
  requestTimestamp: number | null;
}

/** What `/auth/hello` says about the token sent. */
export interface HematoHello {
  /** True when the service accepted the token (2xx). */
  accepted: boolean;
  status: number;
  /** The service's explanation when it rejects the token. */
  error?: string;
  userMessage?: string;
  /** The envelope's `results`: whatever the service reports about the token. */
  results?: unknown;
  debugInfo?: Record<string, unknown>;
}

/** A created study. */
export interface HematoStudy {
  studyId: string;
}

/** A study found by its tags. */
export interface HematoStudySummary {
  studyId: string;
  tags: Record<string, string>;
  /** When the service created it, as sent (RFC 3339), if it says. */
  createdAt?: string;
  reportStatus?: ReportStatus | (string & {});
}

/** A study submitted by list URL (workflow 2). */
export interface HematoListStudy {
  studyId: string;
  /** File ids, when the service already knows them. */
  fileIds: string[];
}

/** An uploaded file. */
export interface HematoUploadedFile {
  studyId: string;
  /** `sha224-i-<hex>`, checked against the hash computed while streaming. */
  fileId: string;
  /** Bytes sent. */
  bytes: number;
}

/** Tasks accepted for a study. */
export interface HematoTasks {
  studyId: string;
  tasks: string[];
}

/** `GET /pbs/{id}/status`. */
export interface HematoStudyStatus {
  studyId: string;
  /** `pending|processing|ready|failed`; an unknown value passes through as sent. */
  reportStatus: ReportStatus | (string & {});
  /** 0..1 */
  progress: number;
  progressMessage?: string;
  /** Latest report version when the service says (sandbox extension). */
  reportVersion?: number;
  /** The envelope's `user_message` (e.g. why processing failed), for staff. */
  userMessage?: string;
}

/** One feature statistic; `value` is null when the service sent something non-numeric. */
export interface HematoFeatureStatistic {
  value: number | null;
  /** The value exactly as sent. */
  rawValue: NumLike;
  unit: string;
}

/** One heat-map spot of a morphological finding. */
export interface HematoHeatMapSpot {
  x: number;
  y: number;
  radius: number;
  fileId?: string;
}

/** Level 1: a morphological finding. */
export interface HematoMorphologicalFinding {
  count: number | null;
  heatMap: HematoHeatMapSpot[];
}

/** Level 2: one differential diagnosis. */
export interface HematoDiagnosis {
  icd10Code: string;
  score: number | null;
  /** 0..1 */
  confidence: number | null;
  clinicalSignificance?: string;
  englishLong?: string;
  englishShort?: string;
}

/** `GET /pbs/{id}/report`, the three levels typed. */
export interface HematoReport {
  studyId: string;
  fileIds: string[];
  /** Report version when the service says (sandbox extension, counted from 1). */
  version?: number;
  featureStatistics: Record<string, HematoFeatureStatistic>;
  /** Level 1. */
  morphologicalFindings: Record<string, HematoMorphologicalFinding>;
  /** Level 2. */
  differentialDiagnosis: HematoDiagnosis[];
  /** Level 3: free text. */
  pathologyReport: string;
  /** The `results` object exactly as received, for storage (the source of the HL7/FHIR results). */
  raw: ReportResults;
}

/** A callback's body, read liberally (`pbs_stody_id` or `pbs_study_id`). */
export interface HematoCallbackEvent {
  studyId?: string;
  reportStatus?: string;
  progress?: number;
  event?: string;
}

function bad(what: string): HematoApiError {
  return new HematoApiError({ kind: 'invalid_response', message: `Hemato.AI answer without ${what}` });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

function requireStudyId(r: { pbs_study_id?: unknown } | undefined): string {
  const id = str(r?.pbs_study_id);
  if (!id) throw bad('results.pbs_study_id');
  return id;
}

/** Parses `/auth/login` results (the token is taken separately). */
export function parseLogin(r: LoginResults | undefined): HematoLoginInfo {
  const u = isObject(r?.user) ? r.user : ({} as Partial<LoginResults['user']>);
  let loggedInAt: Date | undefined;
  if (r?.login_timestamp && /^\d+$/.test(String(r.login_timestamp))) {
    loggedInAt = new Date(Number(BigInt(String(r.login_timestamp)) / 1_000_000n));
  }
  return {
    userId: str(u.id) ?? '',
    email: str(u.email) ?? '',
    screenName: str(u.screen_name) ?? '',
    userName: str(u.user_name) ?? '',
    loggedInAt,
  };
}

/** Parses `/heartbeat` (not enveloped). */
export function parseHeartbeat(b: Partial<Heartbeat> | undefined): HematoHeartbeat {
  if (!isObject(b) || b.heartbeat === undefined) throw bad('heartbeat');
  return {
    heartbeat: String(b.heartbeat),
    version: str(b.version) ?? '',
    delta: str(b.delta) ?? '',
    requestTimestamp: parseNumLike(b.request_timestamp as NumLike | undefined),
  };
}

/** Parses `POST /pbs` (workflow 1). */
export function parseStudy(r: CreateStudyResults | undefined): HematoStudy {
  return { studyId: requireStudyId(r) };
}

/**
 * Parses `GET /pbs?tag.<k>=<v>`: the studies carrying those tags, oldest first when the service dates them.
 * Studies that do not carry every one of `wanted` are left out: a service that ignored the filter would
 * list the account's other studies, and another order's (another patient's) must never be taken for one's own.
 */
export function parseStudies(
  r: ListStudiesResults | undefined,
  wanted: Record<string, string> = {},
): HematoStudySummary[] {
  if (!Array.isArray(r?.studies)) throw bad('results.studies');
  const out: HematoStudySummary[] = r.studies.map((s) => ({
    studyId: requireStudyId(s),
    tags: isObject(s.tags)
      ? Object.fromEntries(Object.entries(s.tags).filter((e): e is [string, string] => typeof e[1] === 'string'))
      : {},
    createdAt: str(s.created_at),
    reportStatus: str(s.report_status),
  }));
  return out
    .filter((s) => Object.entries(wanted).every(([k, v]) => s.tags[k] === v))
    .sort((a, b) => (a.createdAt ?? '').localeCompare(b.createdAt ?? ''));
}

/** Parses `POST /pbs` (workflow 2). */
export function parseListStudy(r: CreateStudyResults | undefined): HematoListStudy {
  return {
    studyId: requireStudyId(r),
    fileIds: Array.isArray(r?.file_ids) ? r.file_ids.filter((f) => typeof f === 'string') : [],
  };
}

/** Parses `POST /pbs/{id}/files`, before the file id is checked. */
export function parseUpload(r: UploadFileResults | undefined): { studyId: string; fileId: string } {
  const fileId = str(r?.file_id);
  if (!fileId) throw bad('results.file_id');
  return { studyId: requireStudyId(r), fileId };
}

/** Parses `POST /pbs/{id}/tasks` (the reference's example has no `status`). */
export function parseTasks(r: RequestTasksResults | undefined, fallbackStudyId: string, asked: string[]): HematoTasks {
  return {
    studyId: str(r?.pbs_study_id) ?? fallbackStudyId,
    tasks: Array.isArray(r?.tasks) ? r.tasks.map(String) : asked,
  };
}

/** Parses `GET /pbs/{id}/status`. */
export function parseStatus(r: StatusResults | undefined): HematoStudyStatus {
  const studyId = requireStudyId(r);
  const reportStatus = str(r?.report_status);
  if (!reportStatus) throw bad('results.report_status');
  const progress = parseNumLike(r?.progress as NumLike | undefined);
  const version = parseNumLike(r?.report_version as NumLike | undefined);
  return {
    studyId,
    reportStatus,
    progress: progress === null ? (reportStatus === 'ready' ? 1 : 0) : Math.min(1, Math.max(0, progress)),
    progressMessage: str(r?.progress_message),
    reportVersion: version ?? undefined,
  };
}

/** Parses `GET /pbs/{id}/report`: numbers from strings, missing levels as empty. */
export function parseReport(r: ReportResults | undefined): HematoReport {
  const studyId = requireStudyId(r);
  const featureStatistics: Record<string, HematoFeatureStatistic> = {};
  for (const [k, v] of Object.entries(isObject(r?.feature_statistics) ? r.feature_statistics : {})) {
    if (!isObject(v)) continue;
    featureStatistics[k] = { value: parseNumLike(v.value), rawValue: v.value, unit: str(v.unit) ?? '' };
  }
  const morphologicalFindings: Record<string, HematoMorphologicalFinding> = {};
  for (const [k, v] of Object.entries(isObject(r?.morphological_findings) ? r.morphological_findings : {})) {
    if (!isObject(v)) continue;
    const heatMap: HematoHeatMapSpot[] = [];
    for (const s of Array.isArray(v.heat_map) ? v.heat_map : []) {
      if (!isObject(s) || !Array.isArray(s.center)) continue;
      const x = parseNumLike(s.center[0] as NumLike);
      const y = parseNumLike(s.center[1] as NumLike);
      const radius = parseNumLike(s.radius as NumLike);
      if (x === null || y === null || radius === null) continue;
      heatMap.push({ x, y, radius, ...(typeof s.file_id === 'string' ? { fileId: s.file_id } : {}) });
    }
    morphologicalFindings[k] = { count: parseNumLike(v.count), heatMap };
  }
  const dd = isObject(r?.diagnostic_report) ? r.diagnostic_report.differential_diagnosis : [];
  const differentialDiagnosis: HematoDiagnosis[] = [];
  for (const d of Array.isArray(dd) ? dd : []) {
    if (!isObject(d)) continue;
    const icd10Code = str(d['icd10-code']);
    if (!icd10Code) continue;
    differentialDiagnosis.push({
      icd10Code,
      score: parseNumLike(d.score),
      confidence: parseNumLike(d.confidence),
      clinicalSignificance: str(d['clinical-significance']),
      englishLong: str(d['english-long']),
      englishShort: str(d['english-short']),
    });
  }
  const version = parseNumLike(r?.version as NumLike | undefined);
  return {
    studyId,
    fileIds: Array.isArray(r?.file_ids) ? r.file_ids.filter((f) => typeof f === 'string') : [],
    version: version ?? undefined,
    featureStatistics,
    morphologicalFindings,
    differentialDiagnosis,
    pathologyReport: str(r?.pathology_report) ?? '',
    raw: r as ReportResults,
  };
}

/** Reads a callback body liberally. A callback is a hint: re-read status and report before acting. */
export function parseCallbackBody(body: unknown): HematoCallbackEvent {
  if (!isObject(body)) return {};
  const b = body as CallbackBody;
  const progress = parseNumLike(b.progress as NumLike | undefined);
  return {
    studyId: str(b.pbs_stody_id) ?? str(b.pbs_study_id),
    reportStatus: str(b.report_status),
    progress: progress ?? undefined,
    event: str(b.event),
  };
}
