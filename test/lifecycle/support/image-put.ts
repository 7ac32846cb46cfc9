import { createReadStream } from 'node:fs';
import http from 'node:http';

export interface Reply {
  status: number;
  body: any;
}

/** What the client sees when the server answered and closed while the body was still being written. */
const CLOSED_UNDER_US = new Set(['EPIPE', 'ECONNRESET']);

/**
 * A PUT whose body `write` sends at its own pace (a file piped in chunks, a slow scanner link, a client
 * that stops mid-way), answered with the status and the JSON (or text) body.
 *
 * - Requests go through the pooled keep-alive agent (Node's global one), as a scanner client's would.
 *   A request of its own connection (`agent: false`) made a fast 413/401 meet the body's write as EPIPE
 *   before its answer was read.
 * - The response wins: the server may answer (413, 401, 409) and close before the whole body is sent;
 *   once a response has arrived, an EPIPE/ECONNRESET is not a failure, and the reply is what was
 *   received.
 * - A kept-alive connection the server closed just as it was reused (ECONNRESET/EPIPE on a reused
 *   socket, no response at all) is tried once more on another connection: the request never reached
 *   the server. `write` is then called again, for the new request.
 */
export function putImage(
  url: string,
  headers: Record<string, string>,
  write: (req: http.ClientRequest) => Promise<void> | void,
  retriesOnReusedSocket = 1,
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = http.request(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', ...headers },
    });
    let answered = false;
    let settled = false;
    const chunks: Buffer[] = [];
    let status = 0;
    const reply = () => {
      if (settled) return;
      settled = true;
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      resolve({ status, body });
    };
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    req.on('response', (res) => {
      answered = true;
      status = res.statusCode ?? 0;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', reply);
      // The connection closed under the answer (the server hung up after it): keep what came.
      res.on('error', reply);
      res.on('close', reply);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (answered) return reply();
      if (req.reusedSocket && CLOSED_UNDER_US.has(err.code ?? '') && retriesOnReusedSocket > 0) {
        settled = true;
        putImage(url, headers, write, retriesOnReusedSocket - 1).then(resolve, reject);
        return;
      }
      fail(err);
    });
    Promise.resolve()
      .then(() => write(req))
      .catch(fail);
  });
}

/** A PUT of a file on disk, streamed (chunked), as a scanner client would send it. */
export const putFile = (url: string, file: string, headers: Record<string, string>): Promise<Reply> =>
  putImage(url, headers, (req) => {
    const source = createReadStream(file);
    // A request that ends early (answered and closed) no longer reads the file: let it go.
    req.on('close', () => source.destroy());
    source.on('error', (err) => req.destroy(err));
    source.pipe(req);
  });

/** A PUT of bytes held in memory, in one write. */
export const putBytes = (url: string, headers: Record<string, string>, data: Buffer): Promise<Reply> =>
  putImage(url, headers, (req) => {
    req.end(data);
  });

/** A POST without a body (e.g. `.../images/complete`), answered with the status and the JSON body. */
export async function postJson(url: string, headers: Record<string, string>): Promise<Reply> {
  const res = await fetch(url, { method: 'POST', headers });
  return { status: res.status, body: await res.json() };
}
