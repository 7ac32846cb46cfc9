import { Body, Controller, HttpCode, Inject, Param, Post, UnauthorizedException } from '@nestjs/common';
import { APP_CONFIG, JobName, createLogger, type AppConfig } from '@hemato/common';
import { CALLBACK_PATH_PREFIX, parseCallbackBody, verifyCallbackSignature } from '@hemato/hemato-client';
import { LifecycleQueue, OrderTransitions } from '@hemato/orders';
import { OrderEntity } from '@hemato/persistence';
import { DataSource } from 'typeorm';

const log = createLogger('hemato-callback');

/**
 * Hemato.AI's callbacks, at the signed per-study URL we gave it. A bad or expired signature is a 401
 * and changes nothing. A good one is only a hint: the worker re-reads the status from the API.
 */
@Controller(CALLBACK_PATH_PREFIX.replace(/^\//, ''))
export class HematoCallbackController {
  constructor(
    private readonly ds: DataSource,
    private readonly queue: LifecycleQueue,
    private readonly transitions: OrderTransitions,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'security'>,
  ) {}

  @Post(':subject/:expires/:signature')
  @HttpCode(202)
  async callback(
    @Param('subject') subject: string,
    @Param('expires') expires: string,
    @Param('signature') signature: string,
    @Body() body: unknown,
  ) {
    const check = verifyCallbackSignature(this.config.security.CALLBACK_SIGNING_SECRET, subject, expires, signature);
    if (!check.ok) {
      log.warn({ reason: check.reason }, 'callback refused');
      throw new UnauthorizedException(`Callback signature refused: ${check.reason}`);
    }
    const order = subject.startsWith('order:')
      ? await this.ds.manager.findOne(OrderEntity, { where: { id: subject.slice('order:'.length) } })
      : await this.ds.manager.findOne(OrderEntity, { where: { hematoStudyId: subject } });
    if (!order) {
      log.warn('callback for an unknown study');
      return { accepted: false };
    }
    const event = parseCallbackBody(body);
    await this.transitions.note(order.id, 'hemato_callback', 'hemato', {
      reportStatus: event.reportStatus ?? null,
      progress: event.progress ?? null,
      event: event.event ?? null,
    });
    await this.queue.step(JobName.OrderCheckStatus, order, { tag: `cb${Date.now()}` });
    log.info({ orderId: order.id }, 'callback accepted');
    return { accepted: true };
  }
}
