import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { RedisMemoryServer } from 'redis-memory-server';

export interface EmbeddedRedis {
  url: string;
  stop(): Promise<void>;
}

const SYSTEM_BINARIES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/opt/homebrew/bin/redis-server'];

/** A local Redis for the embedded default: the system `redis-server` where there is one. */
export async function startEmbeddedRedis(dataDir: string, port: number): Promise<EmbeddedRedis> {
  const systemBinary = process.env.REDISMS_SYSTEM_BINARY ?? SYSTEM_BINARIES.find((p) => existsSync(p));
  const downloadDir = path.resolve(dataDir, 'redis-binaries');
  await mkdir(downloadDir, { recursive: true });
  const server = new RedisMemoryServer({
    instance: { port, args: ['--save', '', '--appendonly', 'no'] },
    binary: systemBinary ? { systemBinary } : { downloadDir },
  });
  await server.start();
  const host = await server.getHost();
  const actualPort = await server.getPort();
  return { url: `redis://${host}:${actualPort}`, stop: async () => void (await server.stop()) };
}
