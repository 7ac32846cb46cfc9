import { Module } from '@nestjs/common';
import { HematoCallbackController } from './hemato-callback.controller';
import { StudyFilesController } from './study-files.controller';

@Module({ controllers: [HematoCallbackController, StudyFilesController] })
export class HematoCallbacksModule {}
