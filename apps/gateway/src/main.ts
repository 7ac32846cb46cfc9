import 'reflect-metadata';
import { ConfigError, createLogger, loadConfig } from '@hemato/common';
import { bootstrapGateway } from './bootstrap';

async function main() {
  const config = loadConfig(process.env);
  const { urls } = await bootstrapGateway(config);
  for (const [name, url] of Object.entries(urls)) console.log(`gateway ${name}: ${url}`);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else createLogger('gateway').fatal({ err }, 'gateway failed to start');
  process.exit(1);
});
