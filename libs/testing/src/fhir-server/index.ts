export * from './test-fhir-server';
export * from './medplum-definitions';
export * from './validate-fhir';
