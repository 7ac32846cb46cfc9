import { Module } from '@nestjs/common';
import { OrderImagesController } from './order-images.controller';

@Module({ controllers: [OrderImagesController] })
export class ImagesModule {}
