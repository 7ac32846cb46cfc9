import { parentPort } from 'node:worker_threads';
import { checkAndAnalyse, FileProblem } from './files';
import type { HematoFileType } from '@hemato/hemato-client';

/** Worker thread body: decodes and analyses one file per message, off the main event loop. */
parentPort?.on('message', (msg: { id: number; bytes: Uint8Array; type: HematoFileType }) => {
  try {
    parentPort?.postMessage({ id: msg.id, images: checkAndAnalyse(msg.bytes, msg.type) });
  } catch (err) {
    const problem = err instanceof FileProblem;
    parentPort?.postMessage({
      id: msg.id,
      error: { message: (err as Error).message, status: problem ? err.status : 500, problem },
    });
  }
});
