import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ImageServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Connections open right now. */
  openConnections(): number;
  /** Drops every connection and stops listening. */
  close(): Promise<void>;
}

/** A loopback HTTP server standing in for a hospital's image server, keeping count of its connections. */
export async function startImageServer(handler: http.RequestListener): Promise<ImageServer> {
  const server = http.createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    openConnections: () => sockets.size,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
