import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HematoProxyHooks {
  /** Answers a request itself, instead of the sandbox, when it returns true (having written `res`). */
  answer?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  /**
   * For a request whose 200 answer should be changed: a function from the sandbox's JSON body to the one sent
   * instead. Null passes the answer through untouched, as does any status but 200.
   */
  rewriteJson?: (req: http.IncomingMessage) => ((body: any) => unknown) | null;
}

export interface HematoProxy {
  /** `http://127.0.0.1:<port>`: the pipeline's HEMATO_BASE_URL. */
  url: string;
  /** Where requests go on to (the sandbox's URL): set once the pipeline is up. */
  target: string;
  close(): Promise<void>;
}

/**
 * An HTTP proxy between the bridge and the sandbox, for tests in which Hemato.AI answers what the sandbox never
 * would (a long Retry-After, a malformed report). Requests the hooks leave alone reach the sandbox untouched.
 */
export async function startHematoProxy(hooks: HematoProxyHooks): Promise<HematoProxy> {
  const proxy: HematoProxy = { url: '', target: '', close: async () => undefined };
  const server = http.createServer((req, res) => {
    if (hooks.answer?.(req, res)) {
      req.resume();
      return;
    }
    const change = hooks.rewriteJson?.(req) ?? null;
    const up = http.request(`${proxy.target}${req.url}`, { method: req.method, headers: req.headers }, (ur) => {
      if (!change || ur.statusCode !== 200) {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => {
        const body = JSON.stringify(change(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () => new Promise<void>((r) => server.close(() => r()));
  return proxy;
}
