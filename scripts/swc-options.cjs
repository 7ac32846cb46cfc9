// One swc configuration shared by the build (scripts/build.mjs) and Jest (jest.config.js),
// so the code under test is compiled exactly as the code that runs.
const path = require('node:path');
const tsconfig = require('../tsconfig.json');

const root = path.resolve(__dirname, '..');

/** @param {{ keepDynamicImport?: boolean }} [opts] */
function swcOptions(opts = {}) {
  return {
    jsc: {
      parser: { syntax: 'typescript', decorators: true, tsx: false },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2023',
      keepClassNames: true,
      baseUrl: root,
      paths: tsconfig.compilerOptions.paths, // './libs/...': relative to baseUrl
    },
    module: { type: 'commonjs', ignoreDynamic: opts.keepDynamicImport ?? true },
    sourceMaps: true,
  };
}

module.exports = { swcOptions, root };
