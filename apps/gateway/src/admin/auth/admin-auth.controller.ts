import { Body, Controller, Get, HttpCode, Post, Req, Res, UseGuards } from '@nestjs/common';
import { ApiBody, ApiCookieAuth, ApiOkResponse, ApiProperty, ApiTags } from '@nestjs/swagger';
import { APP_CONFIG, type AppConfig } from '@hemato/common';
import { Inject } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AdminAuthService, SESSION_COOKIE } from './admin-auth.service';
import { AdminAuthGuard, clientIp, CurrentUser, PublicRoute } from './admin-auth.guard';
import type { SessionUser } from './admin-users.repository';

export class LoginBody {
  @ApiProperty({ example: 'admin@hospital.example' })
  email!: string;
  @ApiProperty({ example: 'correct horse battery staple' })
  password!: string;
}

export class MeResponse {
  @ApiProperty() id!: string;
  @ApiProperty() email!: string;
  @ApiProperty({ enum: ['admin', 'viewer'] }) role!: string;
}

/** Sign-in, sign-out, who am I. */
@ApiTags('admin: auth')
@Controller('api/admin/auth')
@UseGuards(AdminAuthGuard)
export class AdminAuthController {
  constructor(
    private readonly auth: AdminAuthService,
    @Inject(APP_CONFIG) private readonly config: Pick<AppConfig, 'dashboard'>,
  ) {}

  /** Signs in; sets the HttpOnly, SameSite=Strict session cookie. 401 wrong e-mail or password, 423 locked. */
  @Post('login')
  @PublicRoute()
  @HttpCode(200)
  @ApiBody({ type: LoginBody })
  @ApiOkResponse({ type: MeResponse })
  async login(@Body() body: Partial<LoginBody> | undefined, @Req() req: Request, @Res() res: Response) {
    const email = typeof body?.email === 'string' ? body.email.trim().slice(0, 320) : '';
    const password = typeof body?.password === 'string' ? body.password.slice(0, 1000) : '';
    if (!email || !password) {
      res.status(400).json({ statusCode: 400, message: 'E-mail and password are required' });
      return;
    }
    const r = await this.auth.login(email, password, {
      ip: clientIp(req),
      userAgent: req.headers['user-agent'] ?? null,
    });
    if (!r.ok) {
      if (r.reason === 'locked') {
        res.status(423).json({
          statusCode: 423,
          message: `Account locked after repeated failed sign-ins. Try again after ${r.lockedUntil.toISOString()} or ask an admin.`,
          lockedUntil: r.lockedUntil.toISOString(),
        });
      } else {
        res.status(401).json({ statusCode: 401, message: 'Wrong e-mail or password' });
      }
      return;
    }
    res.cookie(SESSION_COOKIE, r.token, {
      httpOnly: true,
      sameSite: 'strict',
      secure: this.secure(req),
      path: '/',
      // The browser keeps it for the longest a session can last; the server ends it sooner when idle.
      maxAge: this.auth.maxAgeMs,
    });
    res.status(200).json(r.user);
  }

  @Post('logout')
  @HttpCode(204)
  @ApiCookieAuth(SESSION_COOKIE)
  async logout(@CurrentUser() user: SessionUser, @Req() req: Request, @Res() res: Response) {
    await this.auth.logout(user, clientIp(req));
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'strict', secure: this.secure(req), path: '/' });
    res.status(204).end();
  }

  @Get('me')
  @ApiCookieAuth(SESSION_COOKIE)
  @ApiOkResponse({ type: MeResponse })
  me(@CurrentUser() user: SessionUser): MeResponse {
    return { id: user.userId, email: user.email, role: user.role };
  }

  private secure(req: Request): boolean {
    switch (this.config.dashboard.ADMIN_COOKIE_SECURE) {
      case 'always':
        return true;
      case 'never':
        return false;
      case 'auto':
        return req.secure || req.headers['x-forwarded-proto'] === 'https';
    }
  }
}
