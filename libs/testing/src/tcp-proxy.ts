import net from 'node:net';

/**
 * A TCP proxy in front of a real service (PostgreSQL, Redis), so a test can make that service
 * "stop answering" (`pause`: every connection cut, new ones refused) and come back (`resume`).
 */
export class TcpProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** While paused the port stays bound (nobody else can take it) but every connection is cut at once. */
  private paused = false;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  static forUrl(url: string, defaultPort: number): TcpProxy {
    const u = new URL(url);
    return new TcpProxy(u.hostname, u.port ? Number(u.port) : defaultPort);
  }

  /** The same URL, pointing at this proxy instead. */
  rewrite(url: string): string {
    const u = new URL(url);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  async start(port = 0): Promise<this> {
    this.server = net.createServer((client) => {
      if (this.paused) {
        client.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Cuts every connection; new ones are cut as they come, until `resume`. */
  async pause(): Promise<void> {
    this.paused = true;
    for (const s of this.sockets) s.destroy();
  }

  async resume(): Promise<void> {
    this.paused = false;
  }

  async stop(): Promise<void> {
    await this.pause();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}
