export * from './test-env';
export * from './smear';
export * from './app-harness';
export * from './tcp-proxy';
export * from './fhir-server';
export * from './mllp-result-receiver';
export * from './pipeline';
export * from './hl7-samples';
