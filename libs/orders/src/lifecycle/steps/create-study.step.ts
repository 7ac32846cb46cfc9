import { Injectable } from '@nestjs/common';
import { JobName, OrderStatus, createLogger } from '@hemato/common';
import { isHematoApiError } from '@hemato/hemato-client';
import { ImageFileEntity, type OrderEntity } from '@hemato/persistence';
import { listCallbackUrl, studyFilesBase } from '../../hemato/signed-urls';
import { answerLost, askAlone, markSent, sentBefore } from './hemato-sent';
import { StepContext } from './step-context';

const log = createLogger('step:create-study');

/**
 * `ready → study_created`. Workflow 1: a new study tagged with proxy ids only, then uploads.
 * Workflow 2: Hemato.AI is handed a signed list URL and fetches the files itself.
 * Once a study id is stored it is never created again for the order; after an attempt whose answer was
 * lost (either workflow), the study it may have created is looked up by the order's tag before another is made.
 */
@Injectable()
export class CreateStudyStep {
  constructor(private readonly ctx: StepContext) {}

  async execute(orderId: string): Promise<void> {
    const order = await this.ctx.order(orderId);
    if (!order || order.status !== OrderStatus.Ready) return;
    // One execution at a time checks and asks (a reconciler run and a retry, a re-run of a stalled job): the
    // one holding the claim reads the order again, so it sees what an execution before it recorded.
    const alone = await askAlone(this.ctx.ds.manager, orderId, 'create_study', () => this.checkAndAsk(orderId));
    if (!alone) log.info({ orderId }, 'another run of create-study is asking Hemato.AI for this order: left to it');
  }

  private async checkAndAsk(orderId: string): Promise<void> {
    const order = await this.ctx.order(orderId);
    if (!order || order.status !== OrderStatus.Ready) return;
    const client = this.ctx.hemato.get();

    if (order.hematoStudyId) {
      // Created before a crash, not yet moved on: move on with the stored study.
      const moved = await this.ctx.transitions.move(orderId, OrderStatus.StudyCreated, {
        actor: 'worker',
        expectFrom: [OrderStatus.Ready],
        deadlineMs: this.ctx.staleMs(),
      });
      await this.ctx.queue.step(JobName.OrderUploadImages, moved);
      return;
    }

    // The order's tags go with both workflows (proxy ids only, never patient data): they find the study an
    // attempt made when its answer was lost.
    const proxy = order.patientProxyId
      ? await this.ctx.proxies.proxyOf(this.ctx.ds.manager, order.patientProxyId)
      : null;
    const tags: Record<string, string> = { bridge_order_id: order.id };
    if (proxy) tags.patient_proxy_id = proxy.proxyId;

    if (this.ctx.workflow === '2') {
      const stored = await this.ctx.ds.manager.count(ImageFileEntity, { where: { orderId, status: 'stored' } });
      if (stored === 0) throw new Error('Order has no stored image to submit');
      const listUrl = `${studyFilesBase(this.ctx.publicBaseUrl(), this.ctx.config.security.CALLBACK_SIGNING_SECRET, orderId)}/list.json`;
      // What the list document will say (the gateway writes it the same way when Hemato.AI fetches it).
      const callback = listCallbackUrl(
        client.endpoint.baseUrl,
        this.ctx.publicBaseUrl(),
        this.ctx.config.security.CALLBACK_SIGNING_SECRET,
        orderId,
      );
      if (!callback) {
        log.warn({ orderId }, 'PUBLIC_BASE_URL is not https: Hemato.AI cannot call back, the order is polled');
      }
      // Posting the list makes the study and starts the run: posting it again after a lost answer would make a
      // second study and a second run (a second report, sent as a correction). The study is looked up by its
      // tag first. A service that ignored tags on a list would not be found: the list is posted again, as before.
      const { studyId, answer } = await this.createOnce(order, () =>
        client.submitFromList(listUrl, order.tasks, tags).then((s) => s.studyId),
      );
      const moved = await this.ctx.transitions.move(orderId, OrderStatus.StudyCreated, {
        actor: 'worker',
        expectFrom: [OrderStatus.Ready],
        patch: { hematoStudyId: studyId, details: { ...order.details, workflow: '2' } },
        detail: {
          studyId,
          workflow: 2,
          callback: callback ? 'signed URL' : 'none (PUBLIC_BASE_URL is not https): polled',
          ...(answer ? { answer } : {}),
        },
        deadlineMs: this.ctx.config.orders.POLL_DEADLINE_MS,
      });
      log.info({ orderId, studyId, answerLost: !!answer }, 'workflow 2 study submitted');
      await this.ctx.queue.step(JobName.OrderCheckStatus, moved, { delayMs: 1000, poll: 1, tag: 'p1' });
      return;
    }

    const { studyId, answer } = await this.createOnce(order, () => client.createStudy(tags).then((s) => s.studyId));
    const moved = await this.ctx.transitions.move(orderId, OrderStatus.StudyCreated, {
      actor: 'worker',
      expectFrom: [OrderStatus.Ready],
      patch: { hematoStudyId: studyId },
      detail: { studyId, ...(answer ? { answer } : {}) },
      deadlineMs: this.ctx.staleMs(),
    });
    log.info({ orderId, studyId, answerLost: !!answer }, 'study created');
    await this.ctx.queue.step(JobName.OrderUploadImages, moved);
  }

  /**
   * Makes the order's study once (`create`: `POST /pbs`, either workflow). After an attempt whose answer was
   * lost (marked before sending), the study it may have made is looked up by the order's tag before another is
   * made; `answer` then says so for the timeline.
   */
  private async createOnce(
    order: OrderEntity,
    create: () => Promise<string>,
  ): Promise<{ studyId: string; answer?: string }> {
    if (sentBefore(order, 'create_study')) {
      const found = await this.createdEarlier(order);
      if (found) {
        return {
          studyId: found,
          answer: 'the answer to an earlier request was lost; the study was found by its bridge_order_id tag',
        };
      }
    }
    await markSent(this.ctx.ds.manager, order.id, 'create_study');
    try {
      return { studyId: await this.ctx.guard.forOrder(order, create) };
    } catch (err) {
      if (!answerLost(err)) throw err;
      const found = await this.createdEarlier(order);
      if (!found) throw err; // not there: the next attempt looks again before creating one
      return { studyId: found, answer: `lost (${err.kind}); the study was found by its bridge_order_id tag` };
    }
  }

  /**
   * The study an earlier attempt created for this order though its answer was lost, found by the order's
   * `bridge_order_id` tag (the oldest, if several). A service that cannot search by tag (404/405/400): none,
   * and the study is created again as before (an orphan study harms less than an order that cannot go on).
   */
  private async createdEarlier(order: OrderEntity): Promise<string | undefined> {
    const client = this.ctx.hemato.get();
    try {
      const found = await this.ctx.guard.forOrder(order, () => client.findStudies({ bridge_order_id: order.id }));
      return found[0]?.studyId;
    } catch (err) {
      if (isHematoApiError(err, 'http') && [400, 404, 405].includes(err.status)) {
        log.warn({ orderId: order.id, status: err.status }, 'Hemato.AI cannot find studies by tag: creating one');
        return undefined;
      }
      throw err;
    }
  }
}
