import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import { readCookie } from './auth/admin-auth.guard';
import { AdminAuthService, SESSION_COOKIE } from './auth/admin-auth.service';

/**
 * OpenAPI for the admin API at /api/docs (JSON at /api/docs-json), behind the same sign-in as the
 * API it documents: without a session the browser is sent to the dashboard's sign-in page.
 */
export function setupAdminOpenApi(app: INestApplication): void {
  const auth = app.get(AdminAuthService);
  const gate = (req: Request, res: Response, next: NextFunction) => {
    auth.authenticate(readCookie(req.headers.cookie, SESSION_COOKIE)).then(
      (user) => {
        if (user) return next();
        // Mounted middleware sees a stripped req.path: decide on the full URL.
        const url = req.originalUrl.split('?')[0] ?? '';
        if (url.endsWith('-json') || url.endsWith('-yaml')) {
          res.status(401).json({ statusCode: 401, message: 'Sign in first' });
        } else {
          res.redirect(302, '/admin/login?next=/api/docs');
        }
      },
      (err: unknown) => next(err),
    );
  };
  app.use('/api/docs', gate);
  app.use('/api/docs-json', gate);
  app.use('/api/docs-yaml', gate);
  const doc = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('hemato-bridge admin API')
      .setDescription(
        'The API behind the dashboard at /admin. Sign in with POST /api/admin/auth/login; the session cookie ' +
          `${SESSION_COOKIE} (HttpOnly, SameSite=Strict) authenticates every other call. Actions need the admin role.`,
      )
      .setVersion('1')
      .addCookieAuth(SESSION_COOKIE)
      .build(),
  );
  SwaggerModule.setup('api/docs', app, doc, { customSiteTitle: 'hemato-bridge admin API' });
}
