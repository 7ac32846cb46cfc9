import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HematoEnvelope } from '@hemato/hemato-client';

export const SANDBOX_VERSION = 'hemato_sandbox.1.0.0';

/** An error answered in the envelope: `error` for operators, `user_message` for people. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly userMessage = '',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Writes the reference's envelope `{status, results, error, user_message, debug_info}`. */
export function sendEnvelope(
  res: ServerResponse,
  status: number,
  results: unknown,
  extra: {
    error?: string;
    user_message?: string;
    debug_info?: Record<string, unknown>;
    headers?: Record<string, string>;
  },
  startedNs: bigint,
): void {
  const body: HematoEnvelope<unknown> = {
    status,
    results: results ?? {},
    error: extra.error ?? '',
    user_message: extra.user_message ?? '',
    debug_info: { delta: delta(startedNs), version: SANDBOX_VERSION, ...extra.debug_info },
  };
  sendJson(res, status, body, extra.headers);
}

/** Answers to be lost (fault injection): the request is carried out, then its connection closed instead. */
const lostAnswers = new WeakSet<ServerResponse>();

/** Whatever this request ends up answering is not sent: the connection is closed instead. */
export function loseAnswer(res: ServerResponse): void {
  lostAnswers.add(res);
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  if (lostAnswers.has(res)) {
    // The request log shows the status the service acted with, though the client never sees it.
    res.statusCode = status;
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Elapsed time the way the reference prints it (`463.021938ms`, `59.078µs`). */
export function delta(startedNs: bigint): string {
  const ns = Number(process.hrtime.bigint() - startedNs);
  return ns < 1e6 ? `${(ns / 1e3).toFixed(3)}µs` : `${(ns / 1e6).toFixed(6)}ms`;
}

const JSON_LIMIT = 1024 * 1024;

/**
 * Reads a small body and parses it as JSON whatever the Content-Type says: the reference's own examples
 * pipe JSON through `http -f` and `curl` (form content types). A real form body is parsed as fields.
 */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > JSON_LIMIT) throw new HttpError(413, 'request body larger than 1 MB', 'The request is too large.');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    if (type.startsWith('application/x-www-form-urlencoded') && !text.startsWith('{') && text.includes('=')) {
      return Object.fromEntries(new URLSearchParams(text));
    }
    throw new HttpError(400, 'the request body is not valid JSON', 'The request could not be read.');
  }
}

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
