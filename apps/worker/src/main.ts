import 'reflect-metadata';
import { ConfigError, createLogger, loadConfig } from '@hemato/common';
import { bootstrapWorker } from './bootstrap';

async function main() {
  const config = loadConfig(process.env);
  await bootstrapWorker(config);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else createLogger('worker').fatal({ err }, 'worker failed to start');
  process.exit(1);
});
