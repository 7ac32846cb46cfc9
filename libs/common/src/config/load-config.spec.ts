import { ConfigError, loadConfig, redactedEnv } from './load-config';

describe('loadConfig', () => {
  const good = {
    DATABASE_URL: 'postgres://u:p@localhost:5432/db',
    REDIS_URL: 'redis://127.0.0.1:6379',
    CALLBACK_SIGNING_SECRET: 'x'.repeat(40),
    PHI_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    PHI_HMAC_KEY: 'y'.repeat(40),
  };

  it('returns typed values with defaults', () => {
    const cfg = loadConfig(good);
    expect(cfg.core.PORT).toBe(3000);
    expect(cfg.hl7.MLLP_PORT).toBe(2575);
    expect(cfg.sandbox.SANDBOX_PORT).toBe(4010);
    expect(cfg.database.DATABASE_URL).toBe(good.DATABASE_URL);
  });

  it('lists every problem at once, naming each variable', () => {
    let error: unknown;
    try {
      loadConfig({ ...good, DATABASE_URL: 'nonsense', PORT: 'abc', HEMATO_REGION: 'mars', REDIS_URL: undefined });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems, message } = error as ConfigError;
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL.*\(got "nonsense"\)$/),
        expect.stringMatching(/^PORT: /),
        expect.stringMatching(/^HEMATO_REGION: must be one of dev, qa, us, ca, eu/),
        'REDIS_URL: is required (not set)',
      ]),
    );
    expect(message).toContain('4 problems');
  });

  it('never prints a secret value, even when it is wrong', () => {
    const leaked = 'short-but-very-secret';
    try {
      loadConfig({ ...good, PHI_HMAC_KEY: leaked, HEMATO_PASSWORD: 'pw' });
      throw new Error('expected a ConfigError');
    } catch (e) {
      expect((e as Error).message).toContain('PHI_HMAC_KEY: must be at least 32 characters (value hidden)');
      expect((e as Error).message).not.toContain(leaked);
    }
    expect(redactedEnv({ ...good, HEMATO_PASSWORD: 'pw' })).toMatchObject({
      HEMATO_PASSWORD: '***',
      PHI_HMAC_KEY: '***',
    });
  });

  it('validates only the sections asked for', () => {
    expect(() => loadConfig({}, ['core', 'sandbox'])).not.toThrow();
    expect(() => loadConfig({}, ['database'])).toThrow(/DATABASE_URL: is required/);
  });
});
