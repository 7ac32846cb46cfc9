import { Controller, Get, Inject, NotFoundException, Param, Res, UnauthorizedException } from '@nestjs/common';
import { APP_CONFIG, collectionTimeOf, type AppConfig } from '@hemato/common';
import { isRfc3339DateTime, resolveEndpoint } from '@hemato/hemato-client';
import {
  FILE_STORE,
  STUDY_FILES_PREFIX,
  listCallbackUrl,
  publicBaseUrl,
  studyFilesBase,
  verifyStudyFiles,
  type FileStore,
} from '@hemato/orders';
import { ImageFileEntity, OrderEntity } from '@hemato/persistence';
import { PatientProxyService } from '@hemato/privacy';
import type { Response } from 'express';
import { DataSource } from 'typeorm';

/**
 * Workflow 2: the list document and the files Hemato.AI downloads, at signed URLs that expire.
 * The list names the patient only by proxy id.
 */
@Controller(STUDY_FILES_PREFIX.replace(/^\//, ''))
export class StudyFilesController {
  constructor(
    private readonly ds: DataSource,
    private readonly proxies: PatientProxyService,
    @Inject(FILE_STORE) private readonly files: FileStore,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'security' | 'core' | 'hemato'>,
  ) {}

  private async authorised(orderId: string, expires: string, signature: string): Promise<OrderEntity> {
    const check = verifyStudyFiles(this.config.security.CALLBACK_SIGNING_SECRET, orderId, expires, signature);
    if (!check.ok) throw new UnauthorizedException(`Signature refused: ${check.reason}`);
    const order = await this.ds.manager.findOne(OrderEntity, { where: { id: orderId } });
    if (!order) throw new NotFoundException('No such study');
    return order;
  }

  private baseUrl(): string {
    return publicBaseUrl(this.config.core);
  }

  @Get(':orderId/:expires/:signature/list.json')
  async list(
    @Param('orderId') orderId: string,
    @Param('expires') expires: string,
    @Param('signature') signature: string,
  ) {
    const order = await this.authorised(orderId, expires, signature);
    const images = await this.ds.manager.find(ImageFileEntity, {
      where: { orderId, status: 'stored' },
      order: { createdAt: 'ASC' },
    });
    const proxy = order.patientProxyId ? await this.proxies.proxyOf(this.ds.manager, order.patientProxyId) : null;
    const base = studyFilesBase(this.baseUrl(), this.config.security.CALLBACK_SIGNING_SECRET, orderId);
    // FHIR orders keep the specimen's collectedDateTime as `collectedAt`; HL7 orders keep OBR-7 / SPM-17 as
    // `collectionTime` (HL7 TS made ISO, with its offset when the TS had one). The reference wants an
    // "RFC3339 formated date time": a value that is not one (a date alone, a TS without an offset, whose
    // zone we do not know) is left out rather than sent or guessed.
    const time = collectionTimeOf(order.details);
    const collected = time && isRfc3339DateTime(time) ? time : undefined;
    // The reference: the callback URL "must support HTTPS": none for a Hemato.AI over TLS when ours is http.
    const hemato = this.config.hemato;
    const callbackUrl = listCallbackUrl(
      resolveEndpoint({
        region: hemato.HEMATO_REGION,
        baseUrl: hemato.HEMATO_BASE_URL,
        allowInsecureHttp: hemato.HEMATO_ALLOW_INSECURE_HTTP,
      }).baseUrl,
      this.baseUrl(),
      this.config.security.CALLBACK_SIGNING_SECRET,
      orderId,
    );
    return {
      peripheral_blood_sample_id: order.id,
      ...(proxy ? { patient_proxy_medical_record_number: proxy.proxyId } : {}),
      ...(collected ? { sample_collection_timestamp: collected } : {}),
      clinical_tasks_requested: order.tasks,
      files: images.map((i) => `${base}/files/${i.id}`),
      ...(callbackUrl ? { callback_url: callbackUrl } : {}),
    };
  }

  @Get(':orderId/:expires/:signature/files/:imageId')
  async file(
    @Param('orderId') orderId: string,
    @Param('expires') expires: string,
    @Param('signature') signature: string,
    @Param('imageId') imageId: string,
    @Res() res: Response,
  ) {
    await this.authorised(orderId, expires, signature);
    const image = /^[0-9a-f-]{36}$/.test(imageId)
      ? await this.ds.manager.findOne(ImageFileEntity, { where: { id: imageId, orderId } })
      : null;
    if (!image?.storageKey) throw new NotFoundException('No such file');
    res.setHeader('Content-Type', image.mediaType ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(image.sizeBytes));
    (await this.files.open(image.storageKey)).pipe(res);
  }
}
