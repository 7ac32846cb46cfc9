import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import { PinoNestLogger, createLogger, rootLogger } from '@hemato/common';
import { CALLBACK_PATH_PREFIX } from '@hemato/hemato-client';
import { setupAdminOpenApi } from './admin/openapi';
import { GatewayModule, type GatewayConfig } from './gateway.module';
import { refuseUnsignedCallbacks } from './hemato-callbacks/refuse-unsigned-callbacks';
import { Hl7ListenerService } from './hl7/hl7-listener.service';

export interface RunningGateway {
  app: NestExpressApplication;
  /** What this gateway serves, for the start banner. */
  urls: Record<string, string>;
}

/** Starts the gateway's HTTP server on `PORT` (0 = any free port). */
export async function bootstrapGateway(config: GatewayConfig): Promise<RunningGateway> {
  rootLogger().level = config.core.LOG_LEVEL;
  const app = await NestFactory.create<NestExpressApplication>(GatewayModule.forRoot(config), {
    logger: new PinoNestLogger(),
    bodyParser: false,
    // req.rawBody: the Subscription hook checks X-Signature over the bytes as sent (the buffer the JSON
    // parser reads anyway, kept until the request ends).
    rawBody: true,
    // Throw on a failed start (the caller decides), instead of Nest exiting the process.
    abortOnError: false,
  });
  app.disable('x-powered-by');
  // Hemato.AI callbacks with a bad or expired URL signature are refused before their body is read.
  app.use(CALLBACK_PATH_PREFIX, refuseUnsignedCallbacks(config.security.CALLBACK_SIGNING_SECRET));
  // The admin API answers patient data (a reveal in clear, orders, lookups) to a signed-in browser: no cache,
  // private or shared, may keep it, and no answer is to be sniffed as anything but what it says it is.
  app.use('/api/admin', (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  // JSON (incl. application/fhir+json) is parsed; image bodies are left as streams for the upload routes.
  app.useBodyParser('json', { type: ['application/json', 'application/*+json'], limit: '60mb' });
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
