import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DifferentialDiagnosis, MorphologicalFinding, ReportResults } from '@hemato/hemato-client';
import type { ImageAnalysis } from './analysis';

export interface StoredFile {
  file_id: string;
  content_type: string;
  bytes: number;
  uploaded_at: string;
  images: ImageAnalysis[];
}

export type StudyState = 'open' | 'downloading' | 'processing' | 'ready' | 'failed';

/** One diagnostic run started by /tasks (or workflow 2, or an admin revision). */
export interface Run {
  tasks: string[];
  started_at: number;
  duration_ms: number;
  /** Set when fault injection decided this run fails: the user message. */
  fail_message?: string;
  /** Report version this run produces. */
  version: number;
  note?: string;
  /** Admin revisions: parts of the report to replace. */
  overrides?: {
    pathology_report?: string;
    morphological_findings?: Record<string, MorphologicalFinding>;
    differential_diagnosis?: DifferentialDiagnosis[];
  };
}

/** A stored report version: the report plus when it was made. */
export interface StoredReport extends ReportResults {
  version: number;
  created_at: string;
  /** Says plainly that the report comes from the sandbox and is not a diagnosis. */
  sandbox_notice: string;
}

export interface Study {
  pbs_study_id: string;
  owner: string;
  workflow: 1 | 2;
  tags: Record<string, string>;
  created_at: string;
  files: StoredFile[];
  /** Uploads refused once tasks were requested. */
  closed: boolean;
  state: StudyState;
  callback_url?: string;
  run?: Run;
  /** Progress when the study failed. */
  failed_progress?: number;
  user_message?: string;
  error?: string;
  reports: StoredReport[];
  /** Base URL the client used, for the report link of the workflow-2 callback. */
  base_url: string;
  /** Workflow 2: the sample id named by the list document (a proxy id by contract). */
  sample_id?: string;
}

/**
 * Studies in memory; with a data folder, each study is also kept as one JSON file (written atomically
 * after each change) and read back on start, so studies survive a restart.
 */
export class StudyStore {
  private readonly studies = new Map<string, Study>();
  private readonly writes = new Map<string, Promise<void>>();

  constructor(private readonly dir?: string) {
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.json')) continue;
      try {
        const study = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as Study;
        this.studies.set(study.pbs_study_id, study);
      } catch {
        // a half-written file from a crash: the tmp+rename write makes this rare; skip it
      }
    }
  }

  get(id: string): Study | undefined {
    return this.studies.get(id);
  }

  all(): Study[] {
    return [...this.studies.values()];
  }

  put(study: Study): void {
    this.studies.set(study.pbs_study_id, study);
    this.save(study);
  }

  /** Persists a changed study (no-op in memory mode). Writes for one study are serialised. */
  save(study: Study): void {
    if (!this.dir) return;
    const dir = this.dir;
    const id = study.pbs_study_id;
    const previous = this.writes.get(id) ?? Promise.resolve();
    const next = previous.then(async () => {
      const file = path.join(dir, `${id}.json`);
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(study));
      await rename(tmp, file);
    });
    const settled = next.catch(() => undefined);
    this.writes.set(id, settled);
    void settled.then(() => {
      if (this.writes.get(id) === settled) this.writes.delete(id);
    });
  }

  async flush(): Promise<void> {
    await Promise.all(this.writes.values());
  }

  clear(): void {
    this.studies.clear();
  }
}
