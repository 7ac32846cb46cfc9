export * from './generate-smear';
