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

  it('reads the HL7 assigning authority → FHIR identifier system map', () => {
    expect(loadConfig({ ...good }, ['fhir']).fhir.FHIR_PATIENT_IDENTIFIER_SYSTEMS).toEqual({});
    expect(
      loadConfig(
        { ...good, FHIR_PATIENT_IDENTIFIER_SYSTEMS: 'HOSP=urn:oid:1.2.3.4, LAB2 = https://lab2.example/mrn' },
        ['fhir'],
      ).fhir.FHIR_PATIENT_IDENTIFIER_SYSTEMS,
    ).toEqual({ HOSP: 'urn:oid:1.2.3.4', LAB2: 'https://lab2.example/mrn' });
    expect(() => loadConfig({ ...good, FHIR_PATIENT_IDENTIFIER_SYSTEMS: 'HOSP=1.2.3' }, ['fhir'])).toThrow(
      /FHIR_PATIENT_IDENTIFIER_SYSTEMS: entry "HOSP=1.2.3" is not AUTHORITY=system/,
    );
  });

  it('times EHR requests out after FHIR_EHR_TIMEOUT_MS (default 30 s, at least 1 ms)', () => {
    expect(loadConfig({ ...good }, ['fhir']).fhir.FHIR_EHR_TIMEOUT_MS).toBe(30_000);
    expect(loadConfig({ ...good, FHIR_EHR_TIMEOUT_MS: '500' }, ['fhir']).fhir.FHIR_EHR_TIMEOUT_MS).toBe(500);
    expect(() => loadConfig({ ...good, FHIR_EHR_TIMEOUT_MS: '0' }, ['fhir'])).toThrow(
      /FHIR_EHR_TIMEOUT_MS: must be >= 1/,
    );
  });

  it('asks for the bucket and its credentials only when IMAGE_STORE=s3', () => {
    expect(loadConfig(good, ['orders']).orders.IMAGE_STORE).toBe('local');
    let error: unknown;
    try {
      loadConfig({ ...good, IMAGE_STORE: 's3', S3_SECRET_ACCESS_KEY: ' ', IMAGE_MAX_BYTES: 'lots' }, ['orders']);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    // The missing S3 settings are listed beside an unrelated bad value, not after it is fixed.
    expect((error as ConfigError).problems).toEqual([
      expect.stringMatching(/^IMAGE_MAX_BYTES: must be a number/),
      'S3_BUCKET: is required when IMAGE_STORE=s3 (not set)',
      'S3_ACCESS_KEY_ID: is required when IMAGE_STORE=s3 (not set)',
      'S3_SECRET_ACCESS_KEY: is required when IMAGE_STORE=s3 (value hidden)',
    ]);

    const s3 = { ...good, IMAGE_STORE: 's3', S3_BUCKET: 'smears', S3_ACCESS_KEY_ID: 'id', S3_SECRET_ACCESS_KEY: 'sk' };
    const aws = loadConfig(s3, ['orders']).orders;
    expect(aws).toMatchObject({ S3_BUCKET: 'smears', S3_PREFIX: 'images/' });
    expect(aws.S3_FORCE_PATH_STYLE).toBeUndefined();
    const minio = loadConfig(
      { ...s3, S3_ENDPOINT: 'http://127.0.0.1:9000', S3_PREFIX: '/hb/smears', S3_FORCE_PATH_STYLE: 'false' },
      ['orders'],
    ).orders;
    expect(minio).toMatchObject({ S3_PREFIX: 'hb/smears/', S3_FORCE_PATH_STYLE: false });
    expect(() => loadConfig({ ...s3, S3_FORCE_PATH_STYLE: 'maybe' }, ['orders'])).toThrow(
      /S3_FORCE_PATH_STYLE: must be true or false/,
    );
  });

  it('reads FHIR_API_KEYS as name:key pairs or bare keys, and names a bad entry by its place, never its text', () => {
    const fhir = loadConfig({ FHIR_API_KEYS: 'bare-key-1, lab-a:key-a ,ehr.main:key:with:colons' }, ['fhir']).fhir;
    expect(fhir.FHIR_API_KEYS).toEqual([
      { client: 'api-key-1', key: 'bare-key-1', named: false },
      { client: 'lab-a', key: 'key-a', named: true },
      { client: 'ehr.main', key: 'key:with:colons', named: true },
    ]);
    expect(fhir.FHIR_ADMIN_CLIENTS).toEqual([]);
    expect(fhir.FHIR_SUBSCRIPTION_CLIENTS).toEqual([]);
    expect(loadConfig({ FHIR_SUBSCRIPTION_CLIENTS: 'ehr, jwt:epic' }, ['fhir']).fhir.FHIR_SUBSCRIPTION_CLIENTS).toEqual(
      ['ehr', 'jwt:epic'],
    );
    const bad = (keys: string) => {
      try {
        loadConfig({ FHIR_API_KEYS: keys }, ['fhir']);
      } catch (e) {
        return (e as ConfigError).problems;
      }
      throw new Error('expected a ConfigError');
    };
    expect(bad('ok-key,sec ret:part')).toEqual([
      expect.stringMatching(/^FHIR_API_KEYS: entry 2: the client name before ':' must be .*\(value hidden\)$/),
    ]);
    expect(bad('sec ret:part').join()).not.toContain('sec ret');
    expect(bad('api-key-2:k')).toEqual([expect.stringMatching(/entry 1: the client name is reserved/)]);
    expect(bad('lab:')).toEqual([expect.stringMatching(/entry 1: no key after the client name/)]);
    expect(bad('lab:k1,lab:k2')).toEqual([expect.stringMatching(/a client name is used twice/)]);
    expect(bad('a:k1,b:k1')).toEqual([expect.stringMatching(/a key is listed twice/)]);
  });

  it('validates only the sections asked for', () => {
    expect(() => loadConfig({}, ['core', 'sandbox'])).not.toThrow();
    expect(() => loadConfig({}, ['database'])).toThrow(/DATABASE_URL: is required/);
  });
});
