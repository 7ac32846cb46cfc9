export * from './entities';
export * from './data-source';
export * from './persistence.module';
export { MIGRATIONS } from './migrations';
export { preparedQuery } from './prepared-query';
