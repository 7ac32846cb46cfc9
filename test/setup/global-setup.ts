import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { runId } from '../../libs/testing/src/test-env';

export default async function globalSetup() {
  // One id for the whole run: every database and Redis prefix the tests make carries it.
  runId();
  // Tests that start the real processes (npm start, the CLIs) run the compiled output.
  if (process.env.HB_TEST_SKIP_BUILD !== '1') {
    execFileSync(process.execPath, [path.join(__dirname, '../../scripts/build.mjs')], { stdio: 'ignore' });
  }
}
