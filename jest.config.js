// Unit specs sit beside the code (*.spec.ts); integration and e2e tests live under test/ and use
// the real PostgreSQL and Redis (DATABASE_URL / REDIS_URL, default the local services).
const { swcOptions } = require('./scripts/swc-options.cjs');

// ESM-only packages that Jest must compile to CommonJS.
const esm = ['@nestjs', 'jose', 'file-type', 'load-esm', 'uid', 'fhir-kit-client', 'strtok3', 'token-types', '@tokenizer', 'uint8array-extras'];
const transform = { '^.+\\.(t|j|mj)s$': ['@swc/jest', { ...swcOptions({ keepDynamicImport: false }), swcrc: false }] };
const moduleNameMapper = { '^@hemato/([a-z0-9-]+)$': '<rootDir>/libs/$1/src' };
const common = {
  transform,
  moduleNameMapper,
  transformIgnorePatterns: [`/node_modules/(?!(${esm.join('|')})/)`],
  testEnvironment: 'node',
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
};

module.exports = {
  ...common,
  globalSetup: '<rootDir>/test/setup/global-setup.ts',
  globalTeardown: '<rootDir>/test/setup/global-teardown.ts',
  testTimeout: 60_000,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{apps,libs}/**/*.spec.ts'] },
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/test/**/*.test.ts'] },
  ],
};
