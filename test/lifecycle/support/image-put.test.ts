import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { putFile } from './image-put';

/** The helper the upload tests stream their PUTs with: a refusal answered early must reach the test. */
describe('putFile (test support)', () => {
  let dir: string;
  let big: string;
  const servers: Array<http.Server | net.Server> = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hb-image-put-'));
    big = path.join(dir, 'big.bin');
    await writeFile(big, Buffer.alloc(8 * 1024 * 1024, 7));
  });

  afterAll(async () => {
    for (const s of servers) s.close();
    await rm(dir, { recursive: true, force: true });
  });

  const listen = async <S extends http.Server | net.Server>(server: S): Promise<string> => {
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/orders/x/images/big.png`;
  };

  it('a 401 answered before the body is read reaches the caller, request after request', async () => {
    const url = await listen(
      http.createServer((_req, res) => {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"API key required"}');
      }),
    );
    for (let i = 0; i < 5; i++) {
      await expect(putFile(url, big, {})).resolves.toEqual({ status: 401, body: { message: 'API key required' } });
    }
  });

  it('the response wins: a 413 followed by the server dropping the connection mid-body resolves with the 413', async () => {
    const body = '{"message":"Image is larger than the limit of 1048576 bytes"}';
    const url = await listen(
      net.createServer((socket) => {
        socket.once('data', () => {
          socket.write(
            `HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
          );
          // Then hangs up while the client is still sending (it sees EPIPE or ECONNRESET).
          setTimeout(() => socket.resetAndDestroy(), 50);
        });
        socket.on('error', () => undefined);
      }),
    );
    await expect(putFile(url, big, {})).resolves.toEqual({ status: 413, body: JSON.parse(body) });
  });
});
