import { Body, Controller, HttpCode, Inject, Param, Post, Put, Req, Res, UseFilters } from '@nestjs/common';
import { APP_CONFIG, createLogger, type AppConfig } from '@hemato/common';
import { FhirOperationError, parseNotification, verifySignature } from '@hemato/fhir';
import type { Response } from 'express';
import { FhirAuthService, type FhirRequest } from './fhir-auth.guard';
import { FhirExceptionFilter } from './fhir-exception.filter';
import { sendFhir } from './fhir-response';
import { SubscriptionNotificationService } from './subscription-notification.service';

const log = createLogger('fhir-subscription-hook');

/**
 * The rest-hook endpoint (`/fhir/subscription-hook`). Accepts an empty POST, a POSTed resource
 * (Medplum, `X-Signature`), `PUT /fhir/subscription-hook/{type}/{id}` (HAPI) and R4 Backport
 * notification Bundles. Authenticated by a valid `X-Signature` (when FHIR_SUBSCRIPTION_SECRET is set)
 * or a bearer token (API key or JWT, sent by the EHR as a channel header) of a client allowed on the
 * hook (FHIR_SUBSCRIPTION_CLIENTS, by default the EHR-wide clients); other valid tokens get 403.
 */
@Controller('fhir/subscription-hook')
@UseFilters(FhirExceptionFilter)
export class FhirSubscriptionController {
  constructor(
    private readonly auth: FhirAuthService,
    private readonly notifications: SubscriptionNotificationService,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'fhir'>,
  ) {}

  private async authenticate(req: FhirRequest, body: unknown): Promise<string> {
    const secret = this.config.fhir.FHIR_SUBSCRIPTION_SECRET;
    const signature = req.headers['x-signature'];
    if (typeof signature === 'string' && secret) {
      // The HMAC is over the body's bytes as sent (kept by the JSON parser for this route). Medplum signs
      // JSON.stringify(resource), which is also what the parsed body re-serialises to: either matches.
      const sent = (req as FhirRequest & { rawBody?: Buffer }).rawBody?.toString('utf8') ?? '';
      const reserialised =
        body === undefined || body === null || (typeof body === 'object' && Object.keys(body).length === 0)
          ? ''
          : JSON.stringify(body);
      if (!verifySignature(secret, sent, signature) && !verifySignature(secret, reserialised, signature)) {
        log.warn({}, 'rest-hook with a bad X-Signature refused');
        throw FhirOperationError.unauthorized('X-Signature does not match');
      }
      return 'signature';
    }
    const client = await this.auth.authenticate(req.headers.authorization);
    if (!client) throw FhirOperationError.unauthorized('A bearer token or a valid X-Signature is required');
    if (!this.auth.mayCallSubscriptionHook(client)) {
      // Refused before anything is read or searched on the EHR.
      log.warn({ client: client.id }, 'rest-hook call refused: the client is not one of the hook callers');
      throw FhirOperationError.forbidden(
        'This client may not call the Subscription hook: its callers are set by FHIR_SUBSCRIPTION_CLIENTS (by default the EHR-wide clients, FHIR_ADMIN_CLIENTS)',
      );
    }
    return client.id;
  }

  @Post()
  @HttpCode(200)
  async post(@Body() body: unknown, @Req() req: FhirRequest, @Res() res: Response) {
    await this.authenticate(req, body);
    await this.answer(res, parseNotification(body));
  }

  @Post(':type/:id')
  async postTyped(
    @Param('type') type: string,
    @Param('id') id: string,
    @Body() body: unknown,
    @Req() req: FhirRequest,
    @Res() res: Response,
  ) {
    await this.authenticate(req, body);
    await this.answer(res, parseNotification(body, { resourceType: type, id }));
  }

  @Put(':type/:id')
  async put(
    @Param('type') type: string,
    @Param('id') id: string,
    @Body() body: unknown,
    @Req() req: FhirRequest,
    @Res() res: Response,
  ) {
    await this.authenticate(req, body);
    await this.answer(res, parseNotification(body, { resourceType: type, id }));
  }

  private async answer(res: Response, n: ReturnType<typeof parseNotification>): Promise<void> {
    const result = await this.notifications.handle(n);
    sendFhir(res, 200, SubscriptionNotificationService.outcomeOf(result));
  }
}
