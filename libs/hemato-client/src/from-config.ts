import type { AppConfig } from '@hemato/common';
import { loadPrivateKey, type HematoAuthOptions } from './auth';
import { HematoClient, type HematoClientOptions } from './client';
import { HematoApiError } from './errors';

/**
 * Builds a {@link HematoClient} from the validated `hemato` config section (environment names):
 * `HEMATO_BASE_URL` (wins) or `HEMATO_REGION` (also the JWT audience), `HEMATO_AUTH=session` with
 * `HEMATO_USER` + `HEMATO_PASSWORD` or `HEMATO_PASS_HASH`, or `HEMATO_AUTH=key` with
 * `HEMATO_KEY_FILE` or `HEMATO_PRIVATE_KEY`, `HEMATO_KEY_ID`, `HEMATO_ISSUER`, `HEMATO_SUBJECT`,
 * `HEMATO_ROLE`, `HEMATO_JWT_ALG`; `HEMATO_TIMEOUT_MS` and `HEMATO_UPLOAD_TIMEOUT_MS`.
 * `HEMATO_ALLOW_INSECURE_HTTP=true` lifts the TLS rule for a non-loopback `http://` base URL.
 * Fails with one error naming every missing variable. `overrides` adds code-only options
 * (`beforeRequest`, `logger`, `retry`, ...).
 */
export function createHematoClientFromConfig(
  hemato: AppConfig['hemato'],
  overrides: Partial<HematoClientOptions> = {},
): HematoClient {
  return new HematoClient({ ...hematoClientOptionsFromConfig(hemato), ...overrides });
}

/** The {@link HematoClientOptions} the config section describes (see {@link createHematoClientFromConfig}). */
export function hematoClientOptionsFromConfig(hemato: AppConfig['hemato']): HematoClientOptions {
  const missing: string[] = [];
  let auth: HematoAuthOptions | undefined;
  switch (hemato.HEMATO_AUTH) {
    case 'session': {
      if (!hemato.HEMATO_USER) missing.push('HEMATO_USER');
      if (!hemato.HEMATO_PASSWORD && !hemato.HEMATO_PASS_HASH) missing.push('HEMATO_PASSWORD or HEMATO_PASS_HASH');
      if (missing.length === 0) {
        auth = {
          method: 'session',
          user: hemato.HEMATO_USER!,
          ...(hemato.HEMATO_PASS_HASH ? { passHash: hemato.HEMATO_PASS_HASH } : { password: hemato.HEMATO_PASSWORD }),
        };
      }
      break;
    }
    case 'key': {
      if (!hemato.HEMATO_KEY_FILE && !hemato.HEMATO_PRIVATE_KEY) missing.push('HEMATO_KEY_FILE or HEMATO_PRIVATE_KEY');
      if (!hemato.HEMATO_KEY_ID) missing.push('HEMATO_KEY_ID');
      if (!hemato.HEMATO_ISSUER) missing.push('HEMATO_ISSUER');
      if (!hemato.HEMATO_SUBJECT) missing.push('HEMATO_SUBJECT');
      if (missing.length === 0) {
        auth = {
          method: 'key',
          privateKey: loadPrivateKey(
            hemato.HEMATO_PRIVATE_KEY ? { pem: hemato.HEMATO_PRIVATE_KEY } : { file: hemato.HEMATO_KEY_FILE },
          ),
          keyId: hemato.HEMATO_KEY_ID!,
          issuer: hemato.HEMATO_ISSUER!,
          subject: hemato.HEMATO_SUBJECT!,
          role: hemato.HEMATO_ROLE,
          alg: hemato.HEMATO_JWT_ALG,
        };
      }
      break;
    }
  }
  if (!auth) {
    throw new HematoApiError({
      kind: 'config',
      message: `HEMATO_AUTH=${hemato.HEMATO_AUTH} needs ${missing.join(', ')}`,
    });
  }
  return {
    region: hemato.HEMATO_REGION,
    baseUrl: hemato.HEMATO_BASE_URL,
    allowInsecureHttp: hemato.HEMATO_ALLOW_INSECURE_HTTP,
    auth,
    timeoutMs: hemato.HEMATO_TIMEOUT_MS,
    uploadTimeoutMs: hemato.HEMATO_UPLOAD_TIMEOUT_MS,
  };
}
