import { ConfigError, createLogger, loadConfig } from '@hemato/common';
import { bootstrapSandbox } from './bootstrap';
import { DEFAULT_USER_EMAIL, DEFAULT_USER_PASSWORD } from './directory';

/** `npm run start:sandbox`: the Hemato.AI sandbox on its own (SANDBOX_PORT, default 4010). */
async function main() {
  const config = loadConfig(process.env, ['core', 'sandbox']);
  const running = await bootstrapSandbox(config);
  console.log(`Hemato.AI sandbox: ${running.url}  (audience ${config.sandbox.SANDBOX_REGION_HOST})`);
  if (!config.sandbox.SANDBOX_CONFIG_FILE && config.sandbox.SANDBOX_USERS.length === 0) {
    console.log(`  default user ${DEFAULT_USER_EMAIL} / password ${DEFAULT_USER_PASSWORD}`);
  }
  console.log(`  request log ${running.url}/_sandbox/requests   faults ${running.url}/_sandbox/faults`);
  const stop = (signal: string) => {
    createLogger('hemato-sandbox').info({ signal }, 'stopping');
    setTimeout(() => process.exit(1), 5000).unref();
    void running.close().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(err.message);
  else createLogger('hemato-sandbox').fatal({ err }, 'sandbox failed to start');
  process.exit(1);
});
