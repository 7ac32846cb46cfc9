import { dropRunDatabases } from '../../libs/testing/src/test-env';

export default async function globalTeardown() {
  await dropRunDatabases();
}
