import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MllpClient } from '@hemato/hl7';
import { startPipeline, type Pipeline } from '@hemato/testing';

/** The names in a folder, sorted; none when it does not exist (yet). */
export async function listNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch {
    return [];
  }
}

export interface DropFolderPipeline {
  p: Pipeline;
  /** An MLLP client to the pipeline's listener, for the orders the images are dropped for. */
  client: MllpClient;
  /** The watched folder (`IMAGE_WATCH_DIR`), fresh and empty. */
  dropDir: string;
  /** Stops the pipeline and removes the folder. */
  close(): Promise<void>;
}

/** The whole system (see `startPipeline`) with its worker watching a fresh drop folder; `env` adds to it. */
export async function startDropFolderPipeline(
  label: string,
  env: Record<string, string> = {},
): Promise<DropFolderPipeline> {
  const dropDir = await mkdtemp(path.join(os.tmpdir(), `hb-${label}-`));
  const p = await startPipeline(label, { IMAGE_WATCH_DIR: dropDir, ...env });
  const client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
  return {
    p,
    client,
    dropDir,
    close: async () => {
      client.close();
      await p.close();
      await rm(dropDir, { recursive: true, force: true });
    },
  };
}
