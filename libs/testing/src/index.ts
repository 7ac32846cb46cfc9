export * from './test-env';
export * from './smear';
export * from './app-harness';
export * from './tcp-proxy';
export * from './fhir-server';
