import {
  BadRequestException,
  Body,
  Controller,
  HttpCode,
  NotFoundException,
  Post,
  Req,
  UseGuards,
} from '@nestjs/common';
import { ApiBody, ApiCookieAuth, ApiProperty, ApiTags } from '@nestjs/swagger';
import { PatientProxyService } from '@hemato/privacy';
import type { Request } from 'express';
import { DataSource } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AdminAuthGuard, clientIp, CurrentUser } from '../auth/admin-auth.guard';
import { SESSION_COOKIE } from '../auth/admin-auth.service';
import type { SessionUser } from '../auth/admin-users.repository';

export class PatientLookupBody {
  @ApiProperty({
    example: 'GENHOSP',
    description: 'assigning authority: PID-3.4 of an HL7 order (else its MSH-4), the identifier system of a FHIR one',
  })
  authority!: string;

  @ApiProperty({ example: 'MRN0001', description: 'the patient identifier (MRN) under that authority' })
  identifier!: string;
}

export class PatientLookupDto {
  @ApiProperty({ description: 'the patient proxy id: search the order list with it (`q`)' })
  proxyId!: string;
}

/** Longest authority or identifier taken (the intake refuses longer identifiers too). */
const MAX_LENGTH = 200;

function field(body: Record<string, unknown> | undefined, name: keyof PatientLookupBody): string {
  const v = body?.[name];
  const s = typeof v === 'string' ? v.trim() : '';
  if (!s || s.length > MAX_LENGTH || s.includes('\0'))
    throw new BadRequestException(`${name} is required: text of at most ${MAX_LENGTH} characters`);
  return s;
}

/**
 * Staff asking "where is this patient's smear result?" know the MRN, not our proxy id. The lookup goes
 * through the keyed HMAC (nothing is decrypted) and answers only the proxy id, which the order list then
 * filters by. It is a POST so the identifier stays out of URLs (browser history, proxy and access logs),
 * and every lookup is audited, found or not, without the identifier itself.
 */
@ApiTags('admin: patients')
@ApiCookieAuth(SESSION_COOKIE)
@Controller('api/admin/patients')
@UseGuards(AdminAuthGuard)
export class AdminPatientsController {
  constructor(
    private readonly ds: DataSource,
    private readonly proxies: PatientProxyService,
    private readonly audit: AuditService,
  ) {}

  @Post('lookup')
  @HttpCode(200)
  @ApiBody({ type: PatientLookupBody })
  async lookup(
    @Body() body: Record<string, unknown> | undefined,
    @CurrentUser() user: SessionUser,
    @Req() req: Request,
  ): Promise<PatientLookupDto> {
    const authority = field(body, 'authority');
    const identifier = field(body, 'identifier');
    const found = await this.proxies.findByIdentifier(this.ds.manager, authority, identifier);
    await this.audit.record({
      userId: user.userId,
      userEmail: user.email,
      action: 'patient.lookup',
      targetType: 'patient',
      targetId: found?.proxyId ?? null,
      detail: { found: found !== null },
      ip: clientIp(req),
    });
    if (!found) throw new NotFoundException('No patient with this identifier under this assigning authority');
    return { proxyId: found.proxyId };
  }
}
