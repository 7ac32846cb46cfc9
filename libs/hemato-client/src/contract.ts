/**
 * Wire types of the Hemato.AI Diagnostic API (`shared/spec/hemato-ai-api.md`), exactly as sent and
 * received: field names keep the reference's spelling (including `pbs_stody_id`). Shared by the
 * client (`libs/hemato-client`) and the sandbox (`apps/hemato-sandbox`).
 */

/** The envelope around most answers. `status` is missing from some examples: never require it. */
export interface HematoEnvelope<T> {
  status?: number;
  results?: T;
  error?: string;
  user_message?: string;
  debug_info?: Record<string, unknown>;
}

/** Region codes: DEV, QA, USA, Canada, EU. */
export type HematoRegion = 'dev' | 'qa' | 'us' | 'ca' | 'eu';

/** Values of the JWT `role` claim. */
export type HematoRole = 'admin' | 'user' | 'device' | 'service';

/** Every {@link HematoRole}. */
export const HEMATO_ROLES: readonly HematoRole[] = ['admin', 'user', 'device', 'service'];

/** Region → host; the host is also the JWT audience. */
export const HEMATO_REGION_HOSTS: Record<HematoRegion, string> = {
  dev: 'dev.api.hemato.ai',
  qa: 'qa.api.hemato.ai',
  us: 'us.api.hemato.ai',
  ca: 'ca.api.hemato.ai',
  eu: 'eu.api.hemato.ai',
};

/** `POST /auth/login` body: `pass_hash` is the sha256 hex of the password, never the password. */
export interface LoginRequest {
  user: string;
  pass_hash: string;
}

/** `POST /auth/login` results; the token is `token.HY_APP_AUTH_v1`. */
export interface LoginResults {
  /** Nanoseconds since the epoch, as a string. */
  login_timestamp: string;
  token: { HY_APP_AUTH_v1: string };
  user: { email: string; id: string; screen_name: string; user_name: string };
}

/** `POST /pbs` body (workflow 1). Tags carry no PII/PHI: proxy ids only. */
export interface CreateStudyRequest {
  tags?: Record<string, string>;
}

/**
 * Workflow 2: Hemato.AI downloads the files named by the document at `list_url`. `tags` as for workflow 1
 * (the reference lets tags accompany `POST /pbs`; its workflow-2 example shows none): proxy ids only.
 */
export interface SubmitListRequest {
  list_url: string;
  tasks: string[];
  tags?: Record<string, string>;
}

/** `POST /pbs` results (both workflows). */
export interface CreateStudyResults {
  pbs_study_id: string;
  /** Workflow 2 only. */
  file_ids?: string[];
}

/**
 * `GET /pbs?tag.<key>=<value>` results. The reference says tags "can later be used to find and retrieve PBSs";
 * the listing's shape is our reading of it (the sandbox serves it so).
 */
export interface ListStudiesResults {
  studies: Array<{
    pbs_study_id: string;
    tags?: Record<string, string>;
    created_at?: string;
    report_status?: ReportStatus;
  }>;
}

/** `POST /pbs/{id}/files` results. */
export interface UploadFileResults {
  pbs_study_id: string;
  /** `sha224-i-<hex sha224 of the bytes>`. */
  file_id: string;
}

/** `POST /pbs/{id}/tasks` body. */
export interface RequestTasksRequest {
  diagnostic_tasks: string[];
  callback_url?: string;
}

/** `POST /pbs/{id}/tasks` results (the reference's example has no `status`). */
export interface RequestTasksResults {
  pbs_study_id: string;
  tasks: string[];
}

/** `report_status` values as we read the reference. */
export type ReportStatus = 'pending' | 'processing' | 'ready' | 'failed';

/** `GET /pbs/{id}/status` results. */
export interface StatusResults {
  pbs_study_id: string;
  report_status: ReportStatus;
  /** 0.0 .. 1.0 */
  progress: number;
  progress_message?: string;
  /** Report versions available (sandbox extension; absent on the real service). */
  report_version?: number;
}

/** A value the reference shows as a string but that may arrive as a number. */
export type NumLike = string | number;

/** One entry of `feature_statistics`. */
export interface FeatureStatistic {
  value: NumLike;
  unit: string;
}

/** One spot of a finding's `heat_map`. */
export interface HeatMapSpot {
  /** [x, y] in pixels of the image. */
  center: [number, number];
  radius: number;
  /** Which file the spot is on (sandbox extension; the reference does not say). */
  file_id?: string;
}

/** One entry of `morphological_findings` (report level 1). */
export interface MorphologicalFinding {
  count: NumLike;
  heat_map?: HeatMapSpot[];
}

/** One entry of `diagnostic_report.differential_diagnosis` (report level 2). */
export interface DifferentialDiagnosis {
  score: NumLike;
  confidence: NumLike;
  'clinical-significance'?: string;
  'icd10-code': string;
  'english-long'?: string;
  'english-short'?: string;
}

/** `GET /pbs/{id}/report` results: findings, diagnoses, pathology text (levels 1-3). */
export interface ReportResults {
  pbs_study_id: string;
  file_ids: string[];
  /** Report version (sandbox extension; versions counted from 1). */
  version?: number;
  feature_statistics: Record<string, FeatureStatistic>;
  morphological_findings: Record<string, MorphologicalFinding>;
  diagnostic_report: { differential_diagnosis: DifferentialDiagnosis[] };
  pathology_report: string;
}

/** Body POSTed to `callback_url` (sic: `pbs_stody_id`; accept `pbs_study_id` too). */
export interface CallbackBody {
  pbs_stody_id?: string;
  pbs_study_id?: string;
  report_status?: ReportStatus;
  progress?: number;
  /** Workflow 2: which of the two callbacks this is (sandbox-defined). */
  event?: 'files_checked' | 'report_ready';
  [key: string]: unknown;
}

/** The document at `list_url` (workflow 2). */
export interface StudyListDocument {
  peripheral_blood_sample_id: string;
  patient_proxy_medical_record_number?: string;
  sample_collection_timestamp?: string;
  clinical_tasks_requested: string[];
  files: string[];
  callback_url?: string;
}

/** `/heartbeat` is not wrapped in the envelope. */
export interface Heartbeat {
  delta: string;
  heartbeat: string;
  request_timestamp: number;
  version: string;
}

/** Upload types the reference accepts (a ZIP holds JPEG/PNG files). */
export type HematoFileType = 'image/jpeg' | 'image/png' | 'application/zip';

/** Every {@link HematoFileType}. */
export const HEMATO_FILE_TYPES: readonly HematoFileType[] = ['image/jpeg', 'image/png', 'application/zip'];
