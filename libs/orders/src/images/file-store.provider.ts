import path from 'node:path';
import type { Provider } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig } from '@hemato/common';
import { LocalFileStore, type FileStore } from './file-store';
import { S3FileStore, S3StoreError } from './s3-file-store';

export const FILE_STORE = Symbol('FILE_STORE');

const log = createLogger('file-store');

/**
 * The configured file store: a local folder (default `DATA_DIR/images`), or an S3 bucket with
 * `IMAGE_STORE=s3`. An S3 bucket that answers "no such bucket" or "access denied" at start stops the
 * start with that reason; one that does not answer yet is only logged (/health/ready shows it).
 */
export const fileStoreProvider: Provider = {
  provide: FILE_STORE,
  inject: [APP_CONFIG],
  useFactory: async (config: Pick<AppConfig, 'core' | 'orders'>): Promise<FileStore> => {
    if (config.orders.IMAGE_STORE === 's3') {
      const store = S3FileStore.fromConfig(config);
      try {
        await store.check();
      } catch (err) {
        if (err instanceof S3StoreError && err.httpStatus !== undefined && err.httpStatus < 500) {
          store.onModuleDestroy();
          throw err;
        }
        log.warn({ error: err instanceof Error ? err.message : String(err) }, 'S3 image store does not answer yet');
      }
      return store;
    }
    return new LocalFileStore(path.resolve(config.orders.IMAGE_DIR ?? path.join(config.core.DATA_DIR, 'images')));
  },
};
