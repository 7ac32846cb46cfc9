import path from 'node:path';
import type { CallbackBody, StatusResults } from '@hemato/hemato-client';
import { withDeadline, type Logger } from '@hemato/common';
import type { Faults } from './faults';
import type { AnalysisPool } from './analysis-pool';
import { fileIdOf, FileProblem, fileTypeOf } from './files';
import { isRecord } from './http-kit';
import { buildReport } from './report';
import type { LoggedCallback, Ring } from './request-log';
import type { Run, StoredFile, Study, StudyStore } from './store';

/** Diagnostic tasks the sandbox knows. */
export const KNOWN_TASKS = ['pbs_v1'] as const;

export interface EngineOptions {
  processingMs: number;
  maxFileBytes: number;
  /** Hosts reachable over plain http besides loopback. */
  httpHosts: string[];
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/i;

/** Callback and download URLs must be https; plain http only for loopback and SANDBOX_HTTP_HOSTS. */
export function checkOutboundUrl(raw: string, what: string, httpHosts: string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new FileProblem(`${what} is not a valid URL`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && (LOOPBACK.test(url.hostname) || httpHosts.includes(url.hostname))) return url;
  throw new FileProblem(`${what} must be an https URL (plain http only for loopback hosts or SANDBOX_HTTP_HOSTS)`);
}

/** Checks diagnostic task names; returns them de-duplicated. */
export function checkTasks(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((t) => typeof t === 'string')) {
    throw new FileProblem(`${field} must be a non-empty list of task names, e.g. ["pbs_v1"]`);
  }
  const unknown = value.filter((t) => !(KNOWN_TASKS as readonly string[]).includes(t));
  if (unknown.length > 0) {
    throw new FileProblem(
      `unknown diagnostic task(s) ${unknown.join(', ')}: available tasks are ${KNOWN_TASKS.join(', ')}`,
    );
  }
  return [...new Set(value as string[])];
}

/**
 * Runs studies: the timed pending → processing → ready progression, report versions, callbacks
 * (with the fault knobs) and workflow 2's downloads.
 */
export class Engine {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly inflight = new Set<AbortController>();
  private readonly pending = new Set<Promise<unknown>>();
  private closed = false;
  private readonly sleepers = new Set<() => void>();

  constructor(
    private readonly store: StudyStore,
    private readonly faults: Faults,
    private readonly callbacks: Ring<LoggedCallback>,
    private readonly pool: AnalysisPool,
    private readonly options: EngineOptions,
    private readonly log: Logger,
  ) {}

  /** After a restart: finish or re-arm the runs that were under way. */
  resume(): void {
    for (const study of this.store.all()) {
      if (study.state === 'processing' && study.run) this.arm(study);
      if (study.state === 'downloading') {
        this.fail(study, 'the sandbox restarted while downloading the files', 'Please submit the study again.', 0);
      }
    }
  }

  /** Starts a diagnostic run; with a processing time of 0 the report is ready before this returns. */
  startRun(study: Study, tasks: string[], extra: Partial<Pick<Run, 'note' | 'overrides'>> = {}): void {
    study.closed = true;
    study.state = 'processing';
    study.user_message = undefined;
    study.error = undefined;
    study.run = {
      tasks,
      started_at: Date.now(),
      duration_ms: this.options.processingMs,
      fail_message: this.faults.failRun(),
      version: study.reports.length + 1,
      ...extra,
    };
    this.store.save(study);
    this.arm(study);
  }

  private arm(study: Study): void {
    const run = study.run;
    if (!run) return;
    const left = run.started_at + run.duration_ms - Date.now();
    if (left <= 0) {
      this.finish(study);
      return;
    }
    clearTimeout(this.timers.get(study.pbs_study_id));
    this.timers.set(
      study.pbs_study_id,
      setTimeout(() => {
        this.timers.delete(study.pbs_study_id);
        this.finish(study);
      }, left),
    );
  }

  /** Ends the run (idempotent): stores the report version or the failure, then sends the callback. */
  finish(study: Study): void {
    const run = study.run;
    if (study.state !== 'processing' || !run) return;
    clearTimeout(this.timers.get(study.pbs_study_id));
    this.timers.delete(study.pbs_study_id);
    if (run.fail_message) {
      this.fail(study, 'processing failed (fault injection)', run.fail_message, 0.5);
      return;
    }
    const report = buildReport(study.pbs_study_id, study.files, run.version, run.note);
    const o = run.overrides;
    if (o?.pathology_report !== undefined) report.pathology_report = o.pathology_report;
    if (o?.morphological_findings !== undefined) report.morphological_findings = o.morphological_findings;
    if (o?.differential_diagnosis !== undefined)
      report.diagnostic_report.differential_diagnosis = o.differential_diagnosis;
    study.reports.push(report);
    study.state = 'ready';
    this.store.save(study);
    this.log.debug({ pbs_study_id: study.pbs_study_id, version: run.version }, 'report ready');
    this.callback(study, {
      ...(study.workflow === 2
        ? {
            event: 'report_ready',
            report_url: `${study.base_url}/pbs/${study.pbs_study_id}/report?version=${run.version}`,
          }
        : {}),
      report_status: 'ready',
      progress: 1.0,
      report_version: run.version,
    });
  }

  private fail(
    study: Study,
    error: string,
    userMessage: string,
    progress: number,
    event?: CallbackBody['event'],
  ): void {
    study.state = 'failed';
    study.error = error;
    study.user_message = userMessage;
    study.failed_progress = progress;
    this.store.save(study);
    this.log.debug({ pbs_study_id: study.pbs_study_id }, 'study failed');
    this.callback(study, {
      ...(study.workflow === 2 ? { event: event ?? 'report_ready' } : {}),
      report_status: 'failed',
      progress,
      user_message: userMessage,
    });
  }

  /** The reference's `/status` results; finishes a run whose time is up (timers can lag under load). */
  status(study: Study): StatusResults & { user_message?: string } {
    const base = { pbs_study_id: study.pbs_study_id, report_version: study.reports.length };
    if (study.state === 'processing' && study.run) {
      const elapsed = Date.now() - study.run.started_at;
      if (elapsed >= study.run.duration_ms) this.finish(study);
    }
    switch (study.state) {
      case 'open':
        return {
          ...base,
          report_status: 'pending',
          progress: 0,
          progress_message: `Waiting for files and diagnostic tasks (${study.files.length} file${study.files.length === 1 ? '' : 's'} so far)`,
        };
      case 'downloading':
        return {
          ...base,
          report_status: 'pending',
          progress: 0.05,
          progress_message: 'Downloading and checking the files',
        };
      case 'processing': {
        const run = study.run as Run;
        const frac = Math.min(0.99, (Date.now() - run.started_at) / Math.max(1, run.duration_ms));
        if (frac < 0.1)
          return { ...base, report_status: 'pending', progress: 0, progress_message: 'Queued for analysis' };
        return {
          ...base,
          report_status: 'processing',
          progress: Math.round(frac * 100) / 100,
          progress_message: `Analysing ${study.files.length} file${study.files.length === 1 ? '' : 's'}`,
        };
      }
      case 'ready':
        return { ...base, report_status: 'ready', progress: 1.0, progress_message: 'Reports are ready' };
      case 'failed':
        return {
          ...base,
          report_status: 'failed',
          progress: study.failed_progress ?? 0,
          progress_message: study.user_message ?? 'Processing failed',
          user_message: study.user_message,
        };
    }
  }

  /** Sends a callback (if the study has a callback URL), honouring the drop and delay faults. */
  private callback(study: Study, body: Record<string, unknown>): void {
    const url = study.callback_url;
    if (!url) return;
    // The reference: "The body of the call will conform to `{"pbs_stody_id":"…", "report_status": "ready",
    // "progress": 1.0}`": the study is named `pbs_stody_id` (sic), and only so, in every callback.
    const full: Record<string, unknown> = {
      pbs_stody_id: study.pbs_study_id,
      ...body,
    };
    const delayMs = this.faults.config.callback_delay_ms;
    const entry = this.callbacks.add({
      at: new Date().toISOString(),
      pbs_study_id: study.pbs_study_id,
      url,
      body: full,
      outcome: 'pending',
      attempts: 0,
      delay_ms: delayMs,
    });
    if (this.faults.dropCallback()) {
      entry.outcome = 'dropped';
      return;
    }
    this.track(this.deliver(entry, url, full, delayMs));
  }

  private async deliver(
    entry: LoggedCallback,
    url: string,
    body: Record<string, unknown>,
    delayMs: number,
  ): Promise<void> {
    if (delayMs > 0) await this.wait(delayMs);
    // A few attempts with back-off, as a real service would do for a busy receiver.
    for (let attempt = 1; attempt <= 3 && !this.closed; attempt++) {
      entry.attempts = attempt;
      const ac = new AbortController();
      this.inflight.add(ac);
      const timer = setTimeout(() => ac.abort(), 10_000);
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'hemato-sandbox' },
          body: JSON.stringify(body),
          signal: ac.signal,
        });
        await res.arrayBuffer().catch(() => undefined);
        entry.http_status = res.status;
        if (res.ok) {
          entry.outcome = 'delivered';
          return;
        }
        entry.error = `HTTP ${res.status}`;
      } catch (err) {
        entry.error = (err as Error).message;
      } finally {
        clearTimeout(timer);
        this.inflight.delete(ac);
      }
      if (attempt < 3 && !this.closed) await this.wait(500 * attempt);
    }
    entry.outcome = 'failed';
    this.log.warn({ pbs_study_id: entry.pbs_study_id, status: entry.http_status }, 'callback not delivered');
  }

  /** Workflow 2: fetch the list document and its files, check them, call back, then run the tasks. */
  startListDownload(study: Study, listUrl: URL, tasks: string[]): void {
    study.state = 'downloading';
    study.closed = true;
    this.store.save(study);
    this.track(this.download(study, listUrl, tasks));
  }

  private async download(study: Study, listUrl: URL, tasks: string[]): Promise<void> {
    let doc: Record<string, unknown>;
    try {
      const bytes = await this.fetchBytes(listUrl, 1024 * 1024, 'the list document');
      const parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as unknown;
      if (!isRecord(parsed)) throw new FileProblem('the list document is not a JSON object');
      doc = parsed;
    } catch (err) {
      const msg = err instanceof SyntaxError ? 'the list document is not valid JSON' : (err as Error).message;
      this.fail(study, msg, `The list of files could not be read: ${msg}.`, 0, 'files_checked');
      return;
    }
    if (!study.callback_url && typeof doc.callback_url === 'string') {
      try {
        study.callback_url = checkOutboundUrl(doc.callback_url, 'callback_url', this.options.httpHosts).toString();
      } catch (err) {
        this.fail(
          study,
          (err as Error).message,
          `The callback URL of the list is refused: ${(err as Error).message}.`,
          0,
        );
        return;
      }
    }
    if (typeof doc.peripheral_blood_sample_id === 'string') study.sample_id = doc.peripheral_blood_sample_id;
    const urls = doc.files;
    if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) {
      this.fail(
        study,
        'the list document has no files',
        'The list document must name at least one file URL in "files".',
        0,
        'files_checked',
      );
      return;
    }
    const checked: Array<Record<string, unknown>> = [];
    for (let i = 0; i < urls.length; i++) {
      if (this.closed) return;
      const label = `file ${i + 1} of ${urls.length}`;
      try {
        const url = checkOutboundUrl(urls[i] as string, label, this.options.httpHosts);
        const { bytes, contentType } = await this.fetchFile(url, label);
        const name = path.posix.basename(url.pathname);
        let type;
        try {
          type = fileTypeOf(contentType, null, name).type;
        } catch {
          type = fileTypeOf(undefined, null, `x.${bytes[0] === 0x89 ? 'png' : bytes[0] === 0xff ? 'jpg' : 'zip'}`).type;
        }
        const fileId = fileIdOf(bytes);
        const size = bytes.length; // the bytes may be handed to a worker thread (and detached) below
        const images = await this.pool.analyse(fileId, bytes, type);
        const file: StoredFile = {
          file_id: fileId,
          content_type: type,
          bytes: size,
          uploaded_at: new Date().toISOString(),
          images,
        };
        if (!study.files.some((f) => f.file_id === file.file_id)) study.files.push(file);
        checked.push({
          index: i,
          file_id: file.file_id,
          bytes: file.bytes,
          content_type: type,
          images: images.length,
          ok: true,
        });
      } catch (err) {
        const raw = (err as Error).message;
        const msg = raw.startsWith(label) ? raw : `${label}: ${raw}`;
        checked.push({ index: i, ok: false, problem: msg });
        this.fail(study, msg, `The study was refused: ${msg}.`, 0.1, 'files_checked');
        return;
      }
    }
    this.callbackFilesChecked(study, checked);
    this.startRun(study, tasks);
  }

  private callbackFilesChecked(study: Study, files: Array<Record<string, unknown>>): void {
    this.callback(study, {
      event: 'files_checked',
      report_status: 'processing',
      progress: 0.1,
      sample_id: study.sample_id,
      file_ids: study.files.map((f) => f.file_id),
      files,
    });
  }

  private async fetchFile(url: URL, what: string): Promise<{ bytes: Uint8Array; contentType?: string }> {
    let contentType: string | undefined;
    const bytes = await this.fetchBytes(url, this.options.maxFileBytes, what, (t) => (contentType = t));
    return { bytes, contentType };
  }

  private async fetchBytes(
    url: URL,
    limit: number,
    what: string,
    onType?: (t: string | undefined) => void,
  ): Promise<Uint8Array> {
    const ac = new AbortController();
    this.inflight.add(ac);
    const timer = setTimeout(() => ac.abort(), 60_000);
    try {
      let res: Response;
      try {
        res = await fetch(url, { signal: ac.signal, headers: { 'user-agent': 'hemato-sandbox' } });
      } catch (err) {
        throw new FileProblem(`${what} could not be downloaded (${(err as Error).message})`);
      }
      if (!res.ok) {
        await res.arrayBuffer().catch(() => undefined);
        throw new FileProblem(`${what} could not be downloaded (HTTP ${res.status})`);
      }
      onType?.(res.headers.get('content-type') ?? undefined);
      const chunks: Uint8Array[] = [];
      let size = 0;
      if (res.body) {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          size += chunk.length;
          if (size > limit) {
            ac.abort();
            throw new FileProblem(`${what} is larger than the ${limit}-byte limit`, 413);
          }
          chunks.push(chunk);
        }
      }
      return Buffer.concat(chunks, size);
    } finally {
      clearTimeout(timer);
      this.inflight.delete(ac);
    }
  }

  private track(p: Promise<unknown>): void {
    const settled = p.catch((err: unknown) =>
      this.log.error({ err: (err as Error).message }, 'background work failed'),
    );
    this.pending.add(settled);
    void settled.finally(() => this.pending.delete(settled));
  }

  /** A sleep that ends early when the sandbox closes, so no timer outlives it. */
  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const wake of [...this.sleepers]) wake();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const ac of this.inflight) ac.abort();
    // Background work gets two seconds to finish; past that the sandbox closes without it.
    await withDeadline(Promise.all(this.pending), 2000, 'background work').catch(() => undefined);
  }
}
