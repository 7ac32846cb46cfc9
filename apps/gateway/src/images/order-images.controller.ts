import { Controller, HttpCode, Param, ParseUUIDPipe, Post, Put, Req, UseFilters, UseGuards } from '@nestjs/common';
import { ImageIntakeService } from '@hemato/orders';
import type { Request } from 'express';
import { ApiKeyGuard } from '../common/api-key.guard';
import { DomainErrorFilter } from '../common/domain-error.filter';

/**
 * Images that arrive after the order: `PUT /api/orders/{id}/images/{name}` with the raw bytes as the
 * body (streamed to the file store, never held in memory), then `POST .../images/complete`.
 */
@Controller('api/orders/:id/images')
@UseGuards(ApiKeyGuard)
@UseFilters(DomainErrorFilter)
export class OrderImagesController {
  constructor(private readonly images: ImageIntakeService) {}

  @Put(':name')
  async upload(@Param('id', ParseUUIDPipe) id: string, @Param('name') name: string, @Req() req: Request) {
    const { image, created, complete } = await this.images.add(id, name, req, 'upload', 'api');
    return {
      id: image.id,
      name: image.name,
      sha224: image.contentHash,
      bytes: Number(image.sizeBytes),
      mediaType: image.mediaType,
      created,
      imagesComplete: complete,
    };
  }

  @Post('complete')
  @HttpCode(200)
  async complete(@Param('id', ParseUUIDPipe) id: string) {
    const status = await this.images.complete(id, 'api', 'completed through the API');
    return { orderId: id, status };
  }
}
