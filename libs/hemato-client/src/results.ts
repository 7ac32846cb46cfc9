import type {
  CallbackBody,
  CreateStudyResults,
  DifferentialDiagnosis,
  FeatureStatistic,
  HeatMapSpot,
  Heartbeat,
  ListStudiesResults,
  LoginResults,
  MorphologicalFinding,
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
  /**
   * The `results` as we keep them (the source of the HL7/FHIR results and the dashboard): cleaned and
   * checked by {@link normalizeReportResults}, malformed entries and unknown fields left out.
   */
  raw: ReportResults;
  /** What the service sent that was left out as malformed, one line each (names, never values). */
  leftOut: string[];
  /** Whether anything is left to report (see {@link NormalizedReport.usable}). */
  usable: boolean;
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

const KNOWN_STATUSES: readonly string[] = ['pending', 'processing', 'ready', 'failed'] satisfies ReportStatus[];

/**
 * Parses `GET /pbs/{id}/status`. The status word and messages are cleaned text ({@link serviceText}); an unknown
 * status passes through (the order keeps waiting for one it knows); progress is clamped to 0..1.
 */
export function parseStatus(r: StatusResults | undefined): HematoStudyStatus {
  const studyId = cleanLine(requireStudyId(r));
  const sent = serviceText(str(r?.report_status), 64);
  if (!sent) throw bad('results.report_status');
  // `READY` or `Ready` is ready: a known status in another case is read as the reference spells it.
  const reportStatus = KNOWN_STATUSES.includes(sent.toLowerCase()) ? sent.toLowerCase() : sent;
  const progress = parseNumLike(r?.progress as NumLike | undefined);
  const version = parseNumLike(r?.report_version as NumLike | undefined);
  return {
    studyId,
    reportStatus,
    progress: progress === null ? (reportStatus === 'ready' ? 1 : 0) : Math.min(1, Math.max(0, progress)),
    progressMessage: serviceText(r?.progress_message),
    reportVersion: version ?? undefined,
  };
}

/**
 * Text as it can be stored and sent: PostgreSQL (text and jsonb) takes no NUL, and HL7, FHIR (XML) and the
 * dashboard have no use for other control characters; a lone UTF-16 surrogate (a `\ud800` escape in the JSON)
 * is no character at all and cannot be encoded as UTF-8. Controls other than tab, CR and LF are dropped,
 * lone surrogates become U+FFFD.
 */
export function cleanText(s: string): string {
  return (
    s
      // eslint-disable-next-line no-control-regex -- control characters are what it removes
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '')
      .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
  );
}

/** A name or label on one line (CR/LF, tabs and runs of spaces as one space), trimmed; '' when none. */
function cleanLine(v: unknown): string {
  const s = str(v);
  return s === undefined ? '' : cleanText(s).replace(/\s+/g, ' ').trim();
}

/**
 * A message or status word from the service, for staff and the timeline: text only (anything else is none),
 * cleaned ({@link cleanText}), trimmed, at most `max` characters; undefined when nothing is left.
 */
export function serviceText(v: unknown, max = 2000): string | undefined {
  if (typeof v !== 'string') return undefined;
  const t = cleanText(v).trim();
  if (!t) return undefined;
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** ICD-10 (WHO and -CM): a letter, two characters (digits, or a digit and a letter), then up to 4 after a dot. */
const ICD10 = /^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$/;

/** `NaN` or `Infinity` sent as text: no value. */
const NOT_A_VALUE = /^[-+]?(nan|inf(inity)?)$/i;

/** How many of the entries left out are named in the timeline (the rest are counted). */
const LEFT_OUT_NAMED = 20;

/** A report's `results` cleaned (see {@link normalizeReportResults}), with what was left out and why. */
export interface NormalizedReport {
  results: ReportResults;
  /** What was left out, one line each (names as sent, never values); empty when the report was well-formed. */
  leftOut: string[];
  /** Whether anything is left to report: a statistic, a finding, a diagnosis or pathology text. */
  usable: boolean;
}

/**
 * The report's `results` as we keep, show and send them: each level of the wire shape with the types
 * the contract gives it, entries that are malformed left out one by one (the rest of the report is still
 * good), all text cleaned ({@link cleanText}), fields the contract does not name dropped. Idempotent, so
 * the result builders apply it again to reports stored before it existed.
 *
 * - `feature_statistics`: an entry needs an object with a numeric value (a number or numeric string) or
 *   a non-numeric text (`"x"`, sent on as text); `null`, objects, `NaN`/`Infinity` are left out. `unit`
 *   as text on one line (a number is taken as its text).
 * - `morphological_findings`: `count` must be a whole number from 0 (a number or numeric string): a
 *   negative, fractional or non-numeric count is left out. Heat-map spots that are not two finite
 *   coordinates and a radius from 0 are dropped.
 * - `differential_diagnosis`: an entry needs an ICD-10-shaped `icd10-code`, a numeric `score` (any
 *   range: the reference's example is 7) and a `confidence` from 0 to 1; the text fields are kept when text.
 * - `pathology_report`: text (line breaks kept), else none.
 */
export function normalizeReportResults(input: unknown): NormalizedReport {
  const r = isObject(input) ? input : {};
  const leftOut: string[] = [];
  const skip = (what: string) => leftOut.push(what);

  const feature_statistics: Record<string, FeatureStatistic> = {};
  if (r.feature_statistics !== undefined && !isObject(r.feature_statistics)) skip('feature_statistics: not an object');
  for (const [k, v] of Object.entries(isObject(r.feature_statistics) ? r.feature_statistics : {})) {
    const name = cleanLine(k);
    if (!name) {
      skip('feature_statistics: an entry without a name');
      continue;
    }
    const raw = isObject(v) ? v.value : undefined;
    const text = typeof raw === 'string' ? cleanLine(raw) : undefined;
    const value: NumLike | undefined =
      typeof raw === 'number' && Number.isFinite(raw) ? raw : text && !NOT_A_VALUE.test(text) ? text : undefined;
    if (value === undefined) {
      skip(`feature_statistics "${name}": no value`);
      continue;
    }
    feature_statistics[name] = { value, unit: isObject(v) ? cleanLine(v.unit) : '' };
  }

  const morphological_findings: Record<string, MorphologicalFinding> = {};
  if (r.morphological_findings !== undefined && !isObject(r.morphological_findings)) {
    skip('morphological_findings: not an object');
  }
  for (const [k, v] of Object.entries(isObject(r.morphological_findings) ? r.morphological_findings : {})) {
    const name = cleanLine(k);
    if (!name) {
      skip('morphological_findings: an entry without a name');
      continue;
    }
    const count = isObject(v) ? parseNumLike(v.count as NumLike) : null;
    if (!isObject(v) || count === null || !Number.isInteger(count) || count < 0) {
      skip(`morphological_findings "${name}": count not a whole number from 0`);
      continue;
    }
    const heat_map: HeatMapSpot[] = [];
    for (const s of Array.isArray(v.heat_map) ? v.heat_map : []) {
      if (!isObject(s) || !Array.isArray(s.center)) continue;
      const x = parseNumLike(s.center[0] as NumLike);
      const y = parseNumLike(s.center[1] as NumLike);
      const radius = parseNumLike(s.radius as NumLike);
      if (x === null || y === null || radius === null || radius < 0) continue;
      heat_map.push({
        center: [x, y],
        radius,
        ...(typeof s.file_id === 'string' ? { file_id: cleanLine(s.file_id) } : {}),
      });
    }
    morphological_findings[name] = { count: typeof v.count === 'string' ? cleanLine(v.count) : count, heat_map };
  }

  const differential_diagnosis: DifferentialDiagnosis[] = [];
  const dr = r.diagnostic_report;
  const dd = isObject(dr) ? dr.differential_diagnosis : undefined;
  if ((dr !== undefined && !isObject(dr)) || (dd !== undefined && !Array.isArray(dd))) {
    skip('diagnostic_report.differential_diagnosis: not a list');
  }
  (Array.isArray(dd) ? dd : []).forEach((d: unknown, i) => {
    const at = `differential_diagnosis[${i}]`;
    if (!isObject(d)) return skip(`${at}: not an object`);
    const code = cleanLine(d['icd10-code']).toUpperCase();
    if (!ICD10.test(code)) {
      return skip(code ? `${at}: "${code.slice(0, 40)}" is not an ICD-10 code` : `${at}: no icd10-code`);
    }
    const score = parseNumLike(d.score as NumLike);
    const confidence = parseNumLike(d.confidence as NumLike);
    if (score === null) return skip(`${at} ${code}: no numeric score`);
    if (confidence === null || confidence < 0 || confidence > 1)
      return skip(`${at} ${code}: confidence not from 0 to 1`);
    const text = (k: 'clinical-significance' | 'english-long' | 'english-short') => {
      const t = cleanLine(d[k]);
      return typeof d[k] === 'string' && t ? { [k]: t } : {};
    };
    differential_diagnosis.push({
      score: typeof d.score === 'string' ? cleanLine(d.score) : score,
      confidence: typeof d.confidence === 'string' ? cleanLine(d.confidence) : confidence,
      'icd10-code': code,
      ...text('clinical-significance'),
      ...text('english-long'),
      ...text('english-short'),
    });
  });

  let pathology_report = '';
  if (typeof r.pathology_report === 'string') pathology_report = cleanText(r.pathology_report);
  else if (r.pathology_report !== undefined && r.pathology_report !== null) skip('pathology_report: not text');

  const version = parseNumLike(r.version as NumLike);
  const results: ReportResults = {
    pbs_study_id: cleanLine(r.pbs_study_id),
    file_ids: Array.isArray(r.file_ids) ? r.file_ids.filter((f) => typeof f === 'string').map(cleanLine) : [],
    ...(version !== null && Number.isInteger(version) && version >= 1 ? { version } : {}),
    feature_statistics,
    morphological_findings,
    diagnostic_report: { differential_diagnosis },
    pathology_report,
  };
  const usable =
    Object.keys(feature_statistics).length > 0 ||
    Object.keys(morphological_findings).length > 0 ||
    differential_diagnosis.length > 0 ||
    pathology_report.trim() !== '';
  const named =
    leftOut.length > LEFT_OUT_NAMED
      ? [...leftOut.slice(0, LEFT_OUT_NAMED), `and ${leftOut.length - LEFT_OUT_NAMED} more`]
      : leftOut;
  return { results, leftOut: named, usable };
}

/**
 * Parses `GET /pbs/{id}/report`: the results cleaned and checked ({@link normalizeReportResults}), numbers
 * from strings, missing levels as empty. `raw` is the cleaned results: what is stored and sent.
 */
export function parseReport(r: ReportResults | undefined): HematoReport {
  requireStudyId(r);
  const { results, leftOut, usable } = normalizeReportResults(r);
  const featureStatistics: Record<string, HematoFeatureStatistic> = {};
  for (const [k, v] of Object.entries(results.feature_statistics)) {
    featureStatistics[k] = { value: parseNumLike(v.value), rawValue: v.value, unit: v.unit };
  }
  const morphologicalFindings: Record<string, HematoMorphologicalFinding> = {};
  for (const [k, v] of Object.entries(results.morphological_findings)) {
    morphologicalFindings[k] = {
      count: parseNumLike(v.count),
      heatMap: (v.heat_map ?? []).map((s) => ({
        x: s.center[0],
        y: s.center[1],
        radius: s.radius,
        ...(s.file_id !== undefined ? { fileId: s.file_id } : {}),
      })),
    };
  }
  const differentialDiagnosis: HematoDiagnosis[] = results.diagnostic_report.differential_diagnosis.map((d) => ({
    icd10Code: d['icd10-code'],
    score: parseNumLike(d.score),
    confidence: parseNumLike(d.confidence),
    clinicalSignificance: d['clinical-significance'],
    englishLong: d['english-long'],
    englishShort: d['english-short'],
  }));
  return {
    studyId: results.pbs_study_id,
    fileIds: results.file_ids,
    version: results.version,
    featureStatistics,
    morphologicalFindings,
    differentialDiagnosis,
    pathologyReport: results.pathology_report,
    raw: results,
    leftOut,
    usable,
  };
}

/** Reads a callback body liberally. A callback is a hint: re-read status and report before acting. */
export function parseCallbackBody(body: unknown): HematoCallbackEvent {
  if (!isObject(body)) return {};
  const b = body as CallbackBody;
  const progress = parseNumLike(b.progress as NumLike | undefined);
  return {
    studyId: serviceText(str(b.pbs_stody_id) ?? str(b.pbs_study_id), 200),
    reportStatus: serviceText(b.report_status, 64),
    progress: progress === null ? undefined : Math.min(1, Math.max(0, progress)),
    event: serviceText(b.event, 64),
  };
}
