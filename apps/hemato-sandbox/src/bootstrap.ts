import type { AddressInfo } from 'node:net';
import type { AppConfig } from '@hemato/common';
import { createLogger } from '@hemato/common';
import { SandboxServer } from './sandbox-server';

export interface RunningSandbox {
  /** Base URL, e.g. http://127.0.0.1:4010 (what HEMATO_BASE_URL should be). */
  url: string;
  port: number;
  /** The server object, for tests and the all-in-one process (faults, logs) — not part of the wire API. */
  sandbox: SandboxServer;
  close(): Promise<void>;
}

/**
 * Starts the Hemato.AI sandbox on `SANDBOX_PORT` (0: any free port) and `HOST`.
 * The returned URL uses 127.0.0.1 when bound to every interface, so it is directly usable.
 */
export async function bootstrapSandbox(config: Pick<AppConfig, 'core' | 'sandbox'>): Promise<RunningSandbox> {
  const sandbox = new SandboxServer(config);
  const host = config.core.HOST || '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    sandbox.server.once('error', reject);
    sandbox.server.listen(config.sandbox.SANDBOX_PORT, host, () => {
      sandbox.server.off('error', reject);
      resolve();
    });
  });
  const port = (sandbox.server.address() as AddressInfo).port;
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${shown}:${port}`;
  createLogger('hemato-sandbox').info({ url }, 'Hemato.AI sandbox listening');
  let closing: Promise<void> | undefined;
  return { url, port, sandbox, close: () => (closing ??= sandbox.close()) };
}
