import { Global, Module } from '@nestjs/common';
import { PhiGuard } from './phi-guard-context';
import { PatientIdentityReader, PatientProxyService } from './patient-proxy.service';

@Global()
@Module({
  providers: [PatientProxyService, PatientIdentityReader, PhiGuard],
  exports: [PatientProxyService, PatientIdentityReader, PhiGuard],
})
export class PrivacyModule {}
