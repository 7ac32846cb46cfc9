import { Global, Module } from '@nestjs/common';
import { PatientIdentityReader, PatientProxyService } from './patient-proxy.service';

@Global()
@Module({
  providers: [PatientProxyService, PatientIdentityReader],
  exports: [PatientProxyService, PatientIdentityReader],
})
export class PrivacyModule {}
