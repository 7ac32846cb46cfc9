import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Controller, Get, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Request, Response } from 'express';

/** apps/dashboard/dist, found from the source tree (tests) or from dist/ (the built gateway). */
export function findDashboardDist(): string | null {
  let dir = __dirname;
  for (let i = 0; i < 8; i++) {
    const candidate = path.join(dir, 'apps', 'dashboard', 'dist');
    if (existsSync(path.join(candidate, 'index.html'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return null;
}

// The page loads only its own files: no fonts, scripts or styles from anywhere else (hospital networks).
const CSP = [
  "default-src 'self'",
  "img-src 'self' data: blob:",
  "style-src 'self' 'unsafe-inline'",
  "script-src 'self'",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'self'",
  "form-action 'self'",
].join('; ');

/** Serves the built dashboard at /admin; any path without a file is the single-page app's index. */
@ApiExcludeController()
@Controller('admin')
export class DashboardStaticController {
  private readonly root = findDashboardDist();

  @Get(['', '*path'])
  serve(@Req() req: Request, @Res() res: Response) {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'same-origin');
    if (!this.root) {
      res.status(503).type('text/plain').send('The dashboard is not built: run `npm run build`.');
      return;
    }
    const rel = decodeURIComponent(req.path.replace(/^\/admin\/?/, ''));
    const full = path.resolve(this.root, rel);
    const inside = full === this.root || full.startsWith(this.root + path.sep);
    if (rel && inside && existsSync(full) && statSync(full).isFile()) {
      // Vite fingerprints everything under assets/: cache it for good.
      res.setHeader('Cache-Control', rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
      res.sendFile(full);
      return;
    }
    if (/\.[a-z0-9]+$/i.test(rel)) {
      res.status(404).type('text/plain').send('Not found');
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(path.join(this.root, 'index.html'));
  }
}
