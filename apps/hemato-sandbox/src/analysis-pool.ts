import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { HematoFileType } from '@hemato/hemato-client';
import type { ImageAnalysis } from './analysis';
import { checkAndAnalyse, FileProblem } from './files';

interface Job {
  id: number;
  bytes: Uint8Array;
  type: HematoFileType;
  resolve: (images: ImageAnalysis[]) => void;
  reject: (err: Error) => void;
}

type Reply = { id: number; images?: ImageAnalysis[]; error?: { message: string; status: number; problem: boolean } };

/**
 * Decodes and analyses files on worker threads, so a large JPEG does not stall the event loop the
 * sandbox shares with the gateway and worker in `npm start`. Without the compiled worker script
 * (running from TypeScript sources under Jest) the work is done in-thread: same code, same results.
 */
export class AnalysisPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private nextId = 1;
  private closed = false;
  private readonly cache = new Map<string, Promise<ImageAnalysis[]>>();
  private static readonly CACHE_MAX = 2000;

  constructor(size = Math.max(1, Math.min(4, availableParallelism()))) {
    const script = path.join(__dirname, 'analysis-worker.js');
    if (!existsSync(script)) return;
    for (let i = 0; i < size; i++) this.spawn(script);
  }

  /** True when work runs on worker threads. */
  get threaded(): boolean {
    return this.workers.length > 0;
  }

  private spawn(script: string): void {
    const worker = new Worker(script);
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const job = this.running.get(worker);
      this.running.delete(worker);
      if (job && job.id === reply.id) {
        if (reply.images) job.resolve(reply.images);
        else if (reply.error?.problem) job.reject(new FileProblem(reply.error.message, reply.error.status));
        else job.reject(new Error(reply.error?.message ?? 'analysis failed'));
      }
      this.idle.push(worker);
      this.pump();
    });
    worker.on('error', (err) => {
      // A crashed worker (e.g. out of memory on a huge image): fail its job, replace it.
      const job = this.running.get(worker);
      this.running.delete(worker);
      job?.reject(new FileProblem(`the file could not be decoded: ${err.message}`));
      this.workers.splice(this.workers.indexOf(worker), 1);
      if (!this.closed) this.spawn(script);
      this.pump();
    });
    this.workers.push(worker);
    this.idle.push(worker);
  }

  /**
   * {@link run} remembered by file id: the id is a hash of the bytes, so the same bytes (a benchmark
   * re-sending one image, concurrent retries) are decoded once.
   */
  analyse(fileId: string, bytes: Uint8Array, type: HematoFileType): Promise<ImageAnalysis[]> {
    const key = `${fileId}|${type}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit); // most recently used last
      return hit;
    }
    const pending = this.run(bytes, type);
    this.cache.set(key, pending);
    pending.catch(() => this.cache.delete(key));
    if (this.cache.size > AnalysisPool.CACHE_MAX) this.cache.delete(this.cache.keys().next().value as string);
    return pending;
  }

  /** Checks and analyses a file; rejects with FileProblem (400/413) when it is not acceptable. */
  run(bytes: Uint8Array, type: HematoFileType): Promise<ImageAnalysis[]> {
    if (!this.threaded) {
      try {
        return Promise.resolve(checkAndAnalyse(bytes, type));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, bytes, type, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop() as Worker;
      const job = this.queue.shift() as Job;
      this.running.set(worker, job);
      // Hand the bytes over without a copy when they own their whole ArrayBuffer (large uploads do).
      const own = job.bytes.byteOffset === 0 && job.bytes.buffer.byteLength === job.bytes.byteLength;
      const transfer = own && job.bytes.buffer instanceof ArrayBuffer ? [job.bytes.buffer] : [];
      worker.postMessage({ id: job.id, bytes: job.bytes, type: job.type }, transfer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('sandbox closing'));
    for (const job of this.running.values()) job.reject(new Error('sandbox closing'));
    this.running.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
