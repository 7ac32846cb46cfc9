import path from 'node:path';
import type { Provider } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import { LocalFileStore, type FileStore } from './file-store';

export const FILE_STORE = Symbol('FILE_STORE');

/** The configured file store: a local folder (default `DATA_DIR/images`). */
export const fileStoreProvider: Provider = {
  provide: FILE_STORE,
  inject: [APP_CONFIG],
  useFactory: (config: Pick<AppConfig, 'core' | 'orders'>): FileStore => {
    if (config.orders.IMAGE_STORE === 's3') {
      throw new Error('IMAGE_STORE=s3 is not available in this build: use IMAGE_STORE=local');
    }
    return new LocalFileStore(path.resolve(config.orders.IMAGE_DIR ?? path.join(config.core.DATA_DIR, 'images')));
  },
};
