import { STATUS_CODES } from 'node:http';
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { DomainError, DomainErrorCode, createLogger, imageUrlProblem, type DeclaredContent } from '@hemato/common';
import { parseRetryAfter } from '@hemato/hemato-client';
import { Agent, request } from 'undici';
import { ADDRESS_REFUSED, guardedLookup, systemResolver, type AddressResolver } from './address-guard';
import { gateImageType, sniffMediaType, type FileStore, type StoredFile } from './file-store';

export interface FetchPolicy {
  /** Hosts (exact names, or `*.example.org`) images may be fetched from. Empty: none. */
  allowedHosts: string[];
  maxBytes: number;
  /** The most a zip may unpack to (`IMAGE_ZIP_MAX_UNPACKED_BYTES`). */
  zipMaxUnpackedBytes?: number;
  /**
   * The whole fetch, headers to last byte, retries and their waits included (default 300 s). A silent
   * server fails one attempt sooner (30 s idle).
   */
  timeoutMs?: number;
  /** Further attempts after a transient failure (default 3): see {@link fetchImage}. */
  retries?: number;
  /** First wait between two attempts (default 1 s); doubles each time, with jitter, up to 30 s. */
  retryBaseDelayMs?: number;
  /** The longest `Retry-After` honoured (default 60 s); a server asking for longer fails the fetch at once. */
  maxRetryAfterMs?: number;
  /**
   * Resolves host names (default: the system's, `dns.lookup`). Whatever resolves them, a name leading only to
   * a loopback, link-local, unspecified or multicast address is not connected to (see `guardedLookup`).
   */
  resolver?: AddressResolver;
}

/**
 * One connection pool per resolver (in practice one: the system's), whose sockets connect only to addresses
 * `guardedLookup` let through.
 */
const dispatchers = new WeakMap<AddressResolver, Agent>();
function dispatcherFor(resolver: AddressResolver): Agent {
  let agent = dispatchers.get(resolver);
  if (!agent) {
    agent = new Agent({ connect: { lookup: guardedLookup(resolver) } });
    dispatchers.set(resolver, agent);
  }
  return agent;
}

/** The {@link AddressRefusedError} behind a failed request (undici may wrap it), if that is why it failed. */
function addressRefusal(err: unknown): Error | undefined {
  let e = err as { code?: unknown; cause?: unknown; message?: unknown } | null | undefined;
  for (let depth = 0; typeof e === 'object' && e !== null && depth < 3; depth++) {
    if (e.code === ADDRESS_REFUSED) return e as Error;
    e = e.cause as typeof e;
  }
  return undefined;
}

/** Network error codes of a connection refused, reset or dropped, or an attempt timing out. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'UND_ERR_SOCKET', // the server closed the connection mid-answer
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

const MAX_BACKOFF_MS = 30_000;

const log = createLogger('image-fetcher');

/** A failure another attempt may get past; `retryAfterMs` is what the server asked to wait, if it did. */
class TransientFetchError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const statusText = (status: number) => `HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ''}`;

/** 5xx but 501 (Not Implemented will not change), and 429: worth another attempt. */
const isTransientStatus = (status: number) => status === 429 || (status >= 500 && status <= 599 && status !== 501);

/**
 * The transient network error code of `err` or of its cause (undici wraps some). Duck-typed, not
 * `instanceof Error`: Node's own errors may come from another realm (a test runner's sandbox).
 */
function networkCode(err: unknown): string | undefined {
  let e = err as { code?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; typeof e === 'object' && e !== null && depth < 3; depth++) {
    const code = e.code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return code;
    e = e.cause as typeof e;
  }
  return undefined;
}

/**
 * Fetches one image by URL into the file store: only http(s), only allow-listed hosts, no redirects
 * (a redirect could leave the allow-list), at most `maxBytes`, and only JPEG, PNG or zip by content.
 * A host reached by name must resolve to an address other than loopback, link-local (cloud metadata),
 * unspecified or multicast: an allow-listed name (or `*.` rule) re-pointed at the machine itself or at its
 * metadata service fetches nothing (checked on the address connected to; `localhost` and an allow-listed
 * IP literal are taken as meant).
 *
 * A transient failure is tried again, up to `retries` more times, with a doubling, jittered wait (or
 * the server's `Retry-After`, up to `maxRetryAfterMs`): a 5xx answer other than 501, a 429, a
 * connection refused or reset, an attempt timing out. Anything else fails at once: a 4xx (the message
 * names the status), a redirect, a refused type or size. All attempts share the one `timeoutMs`.
 */
export async function fetchImage(
  rawUrl: string,
  store: FileStore,
  policy: FetchPolicy,
  declared: DeclaredContent = {},
): Promise<StoredFile & { mediaType: string }> {
  // Intake refused such a URL already; checked again here, where this process's allow-list applies.
  const problem = imageUrlProblem(rawUrl, policy.allowedHosts);
  if (problem) {
    throw new DomainError(
      problem.kind === 'host' ? DomainErrorCode.Forbidden : DomainErrorCode.Invalid,
      problem.reason,
    );
  }
  const url = new URL(rawUrl);
  // A server may answer and then trickle bytes forever (no idle timeout ever fires): the whole fetch has
  // a deadline, after which the connection is dropped and nothing is kept.
  const totalMs = policy.timeoutMs ?? 300_000;
  const endsAt = Date.now() + totalMs;
  const deadline = AbortSignal.timeout(totalMs);
  const tooSlow = () =>
    new DomainError(DomainErrorCode.Unavailable, `Image URL: not delivered within ${Math.round(totalMs / 1000)} s`);
  const retries = policy.retries ?? 3;
  const baseDelayMs = policy.retryBaseDelayMs ?? 1000;
  const maxRetryAfterMs = policy.maxRetryAfterMs ?? 60_000;

  for (let attempt = 1; ; attempt++) {
    try {
      return await fetchOnce(url, store, policy, totalMs, deadline, declared);
    } catch (err) {
      if (deadline.aborted && !(err instanceof DomainError)) throw tooSlow();
      const code = err instanceof TransientFetchError ? undefined : networkCode(err);
      if (!(err instanceof TransientFetchError) && !code) throw err;
      const what = err instanceof TransientFetchError ? err.message : `Image URL: connection failed (${code})`;
      const tries = `${attempt} attempt${attempt === 1 ? '' : 's'}`;
      if (attempt > retries) throw new DomainError(DomainErrorCode.Unavailable, `${what}, ${tries}`);
      const retryAfterMs = err instanceof TransientFetchError ? err.retryAfterMs : undefined;
      if (retryAfterMs !== undefined && retryAfterMs > maxRetryAfterMs) {
        throw new DomainError(
          DomainErrorCode.Unavailable,
          `${what} and asked to wait ${Math.ceil(retryAfterMs / 1000)} s, longer than IMAGE_FETCH_RETRY_AFTER_MAX_MS`,
        );
      }
      const step = Math.min(MAX_BACKOFF_MS, baseDelayMs * 2 ** (attempt - 1));
      // "Equal jitter": at least half the step, so retries spread out without collapsing to zero.
      const delayMs = retryAfterMs ?? Math.round(step / 2 + Math.random() * (step / 2));
      // No attempt could finish in time after that wait: say what failed rather than "too slow".
      if (Date.now() + delayMs >= endsAt) throw new DomainError(DomainErrorCode.Unavailable, `${what}, ${tries}`);
      log.warn({ host: url.hostname, attempt, delayMs, reason: what }, 'image fetch failed, trying again');
      await sleep(delayMs, undefined, { signal: deadline }).catch(() => {
        throw tooSlow();
      });
    }
  }
}

const sizeMismatch = (got: number, declared: number) =>
  `Image URL returned ${got} bytes, not the ${declared} its Attachment.size declares`;

/**
 * `source` (the gated `download`) on to the store, checked against `declared`: other bytes than the order declared (a
 * different or damaged file) fail the store's write, so nothing of them is kept. No check when none declared.
 */
function checkDeclaredContent(source: Readable, download: Readable, declared: DeclaredContent): Readable {
  if (declared.size === undefined && declared.sha1 === undefined) return source;
  const sha1 = createHash('sha1');
  let size = 0;
  const check = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (declared.size !== undefined && size > declared.size)
        return cb(
          new DomainError(
            DomainErrorCode.Invalid,
            `Image URL returned more than the ${declared.size} bytes its Attachment.size declares`,
          ),
        );
      sha1.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      if (declared.size !== undefined && size !== declared.size)
        return cb(new DomainError(DomainErrorCode.Invalid, sizeMismatch(size, declared.size)));
      if (declared.sha1 !== undefined && sha1.digest('hex') !== declared.sha1)
        return cb(
          new DomainError(
            DomainErrorCode.Invalid,
            'Image URL returned bytes whose SHA-1 does not match its Attachment.hash',
          ),
        );
      cb();
    },
  });
  source.once('error', (err) => check.destroy(err));
  // Refused mid-way (more bytes than declared): the download is stopped, not read to its end.
  check.once('error', () => {
    source.unpipe(check);
    source.destroy();
    download.destroy();
  });
  return source.pipe(check);
}

/** The URL without its `user:password@`, and those as a Basic `authorization` header (none without them). */
function withoutCredentials(url: URL): { target: URL; headers: Record<string, string> } {
  if (!url.username && !url.password) return { target: url, headers: {} };
  const target = new URL(url);
  target.username = '';
  target.password = '';
  const decode = (v: string) => {
    try {
      return decodeURIComponent(v);
    } catch {
      return v; // a stray '%': taken as written
    }
  };
  const pair = `${decode(url.username)}:${decode(url.password)}`;
  return { target, headers: { authorization: `Basic ${Buffer.from(pair).toString('base64')}` } };
}

/** One GET of the image: throws a {@link TransientFetchError} for an answer worth another attempt. */
async function fetchOnce(
  url: URL,
  store: FileStore,
  policy: FetchPolicy,
  totalMs: number,
  deadline: AbortSignal,
  declared: DeclaredContent,
): Promise<StoredFile & { mediaType: string }> {
  // undici's request does not follow redirects: a 3xx is refused below like any non-200. It also drops a
  // URL's user:password (the server then answers 401): they are sent as Basic auth, as curl does.
  const { target, headers } = withoutCredentials(url);
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(target, {
      method: 'GET',
      headers,
      headersTimeout: Math.min(30_000, totalMs),
      bodyTimeout: Math.min(30_000, totalMs),
      signal: deadline,
      dispatcher: dispatcherFor(policy.resolver ?? systemResolver),
    });
  } catch (err) {
    // A host name leading only where images may not come from: no other attempt will change that. The reason
    // names the host and the kind of address, never the URL (its path or credentials).
    const refusal = addressRefusal(err);
    if (refusal) throw new DomainError(DomainErrorCode.Forbidden, refusal.message);
    throw err;
  }
  if (res.statusCode !== 200) {
    // Read off (a little of) the answer, so the connection can serve the next attempt; destroy() would
    // emit an error event nobody listens to.
    await res.body.dump({ limit: 64 * 1024, signal: deadline }).catch(() => undefined);
    const message = `Image URL answered ${statusText(res.statusCode)}`;
    if (isTransientStatus(res.statusCode)) {
      throw new TransientFetchError(message, parseRetryAfter(res.headers['retry-after']));
    }
    throw new DomainError(DomainErrorCode.Unavailable, message);
  }
  const maxBytes = policy.maxBytes;
  const length = Number(res.headers['content-length'] ?? NaN);
  if (Number.isFinite(length) && length > maxBytes) {
    await res.body.dump({ limit: 1, signal: deadline }).catch(() => undefined);
    throw new DomainError(DomainErrorCode.TooLarge, `Image is ${length} bytes, over the limit of ${maxBytes}`);
  }
  if (Number.isFinite(length) && declared.size !== undefined && length !== declared.size) {
    await res.body.dump({ limit: 1, signal: deadline }).catch(() => undefined);
    throw new DomainError(DomainErrorCode.Invalid, sizeMismatch(length, declared.size));
  }
  // The type is checked on the first bytes, and the bytes against what the order declared at their end,
  // before the store keeps anything.
  const body = res.body as unknown as Readable;
  const gated = gateImageType(body, 'Image URL did not return a JPEG, PNG or zip', 'destroy', {
    maxBytes,
    maxUnpackedBytes: policy.zipMaxUnpackedBytes,
  });
  const stored = await store.put(checkDeclaredContent(gated, body, declared), maxBytes);
  const mediaType = sniffMediaType(stored.head);
  return { ...stored, mediaType: mediaType ?? 'application/octet-stream' };
}
