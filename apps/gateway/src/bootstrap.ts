import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { json, type NextFunction, type Request, type Response } from 'express';
import { PinoNestLogger, createLogger, rootLogger } from '@hemato/common';
import { unstorableTextAt } from '@hemato/fhir';
import { CALLBACK_PATH_PREFIX } from '@hemato/hemato-client';
import { setupAdminOpenApi } from './admin/openapi';
import { FhirAuthService } from './fhir/fhir-auth.guard';
import { GatewayModule, type GatewayConfig } from './gateway.module';
import { refuseUnsignedCallbacks } from './hemato-callbacks/refuse-unsigned-callbacks';
import { Hl7ListenerService } from './hl7/hl7-listener.service';

export interface RunningGateway {
  app: NestExpressApplication;
  /** What this gateway serves, for the start banner. */
  urls: Record<string, string>;
}

// `application/json+fhir`: the DSTU2 media type, still sent by older FHIR clients for a JSON body.
const JSON_TYPES = ['application/json', 'application/*+json', 'application/json+fhir'];
/** The largest JSON body the admin API reads. */
const ADMIN_JSON_LIMIT = '100kb';
/** The largest JSON body read for a FHIR request with a valid bearer token (inline images). */
const FHIR_JSON_LIMIT = '60mb';
/** The largest JSON body read anywhere else: a FHIR request without a valid token, a callback, an unknown path. */
const SMALL_JSON_LIMIT = '1mb';

/** As Nest's rawBody option does: the bytes as sent, for the Subscription hook's X-Signature. */
function keepRawBody(req: IncomingMessage & { rawBody?: Buffer }, _res: ServerResponse, buf: Buffer): void {
  req.rawBody = buf;
}

/** Starts the gateway's HTTP server on `PORT` (0 = any free port). */
export async function bootstrapGateway(config: GatewayConfig): Promise<RunningGateway> {
  rootLogger().level = config.core.LOG_LEVEL;
  const app = await NestFactory.create<NestExpressApplication>(GatewayModule.forRoot(config), {
    logger: new PinoNestLogger(),
    // JSON bodies are parsed below, with limits by who is asking (and req.rawBody kept: the Subscription
    // hook checks X-Signature over the bytes as sent).
    bodyParser: false,
    // Throw on a failed start (the caller decides), instead of Nest exiting the process.
    abortOnError: false,
  });
  app.disable('x-powered-by');
  // Hemato.AI callbacks with a bad or expired URL signature are refused before their body is read.
  app.use(CALLBACK_PATH_PREFIX, refuseUnsignedCallbacks(config.security.CALLBACK_SIGNING_SECRET));
  // The admin API answers patient data (a reveal in clear, orders, lookups) to a signed-in browser: no cache,
  // private or shared, may keep it, and no answer is to be sniffed as anything but what it says it is.
  // The FHIR API's answers carry patient data too (a ServiceRequest's subject, a DiagnosticReport's results).
  const noStore = (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  };
  app.use('/api/admin', noStore);
  app.use('/fhir', noStore);
  // A body is parsed before any guard: only a caller that has shown a credential gets a large one read
  // (parsing 60 MB for anyone who asks would let a few unauthenticated requests exhaust memory).
  // The admin API takes small bodies only (sign-in, a lookup, a cancel reason).
  app.use('/api/admin', json({ type: JSON_TYPES, limit: ADMIN_JSON_LIMIT }));
  // Text PostgreSQL cannot store (U+0000, an unpaired surrogate) is refused before it reaches a query: it
  // failed there as a 500, a cancel's audit row with it.
  app.use('/api/admin', (req: Request, res: Response, next: NextFunction) => {
    const at = unstorableTextAt(req.query, 'query') ?? unstorableTextAt(req.body, 'body');
    if (at === undefined) return next();
    res.status(400).json({
      statusCode: 400,
      message: `${at.slice(0, 100)} holds a character that cannot be stored (U+0000 or an unpaired UTF-16 surrogate)`,
    });
  });
  // FHIR: 60 MB (inline images) for a valid bearer token; without one (the Subscription hook signed with
  // X-Signature, or no credential at all) 1 MB. Kept raw for the hook's signature check.
  const fhirAuth = app.get(FhirAuthService, { strict: false });
  const credentialedFhirJson = json({ type: JSON_TYPES, limit: FHIR_JSON_LIMIT, verify: keepRawBody });
  const smallJson = json({ type: JSON_TYPES, limit: SMALL_JSON_LIMIT, verify: keepRawBody });
  app.use('/fhir', (req: Request, res: Response, next: NextFunction) => {
    const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    if (!hasBody) return next();
    fhirAuth.authenticate(req.headers.authorization).then(
      (client) => (client ? credentialedFhirJson : smallJson)(req, res, next),
      (err: unknown) => next(err),
    );
  });
  // A Hemato.AI callback is a hint (the study's status is re-read from the API, the reference says its body
  // "can be ignored"): a signed one whose body is not JSON is taken as one without a body, not answered 400
  // and left unread. Too large is still refused (413).
  app.use(CALLBACK_PATH_PREFIX, (req: Request, res: Response, next: NextFunction) =>
    smallJson(req, res, (err?: unknown) => {
      if ((err as { type?: unknown } | undefined)?.type !== 'entity.parse.failed') return next(err);
      req.body = {};
      next();
    }),
  );
  // Everything else (Hemato.AI callbacks, unknown paths): small JSON (incl. application/*+json) bodies; image
  // bodies are left as streams for the upload routes.
  app.use(smallJson);
  app.enableShutdownHooks();
  // Behind a TLS-terminating proxy req.secure / req.ip come from X-Forwarded-*: the session cookie's Secure flag
  // and the audit log's client IP need it. Only from TRUST_PROXY peers: anyone else could name any IP.
  const trustProxy = config.core.TRUST_PROXY;
  app.set('trust proxy', trustProxy === 'none' ? false : trustProxy);
  setupAdminOpenApi(app);
  await app.listen(config.core.PORT, config.core.HOST);
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.core.PORT;
  const base = `http://${config.core.HOST === '0.0.0.0' ? '127.0.0.1' : config.core.HOST}:${port}`;
  const urls: Record<string, string> = {
    http: base,
    health: `${base}/health/ready`,
    metrics: `${base}/metrics`,
    dashboard: `${base}/admin`,
    apiDocs: `${base}/api/docs`,
  };
  const mllp = app.get(Hl7ListenerService, { strict: false });
  if (mllp.port) urls.mllp = mllp.url();
  createLogger('gateway').info({ urls }, 'gateway listening');
  return { app, urls };
}
