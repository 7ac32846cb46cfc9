export * from './test-env';
export * from './smear';
