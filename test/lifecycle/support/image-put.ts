import http from 'node:http';

export interface Reply {
  status: number;
  body: any;
}

/**
 * A PUT whose body `write` sends at its own pace (a file piped in chunks, a slow scanner link, a client
 * that stops mid-way). Each request has a connection of its own: a kept-alive one may be closed by the
 * server just as it is reused. The server may answer (413, 401, 409) and close before the whole body is
 * sent: once answered, that is not a failure.
 */
export function putImage(
  url: string,
  headers: Record<string, string>,
  write: (req: http.ClientRequest) => Promise<void> | void,
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = http.request(url, {
      method: 'PUT',
      agent: false,
      headers: { 'content-type': 'application/octet-stream', ...headers },
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    Promise.resolve()
      .then(() => write(req))
      .catch(reject);
  });
}
