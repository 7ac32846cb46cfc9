import { Global, Module } from '@nestjs/common';
import { MessageSealer } from './message-sealer';
import { PhiGuard } from './phi-guard-context';
import { PatientIdentityReader, PatientProxyService } from './patient-proxy.service';

@Global()
@Module({
  providers: [PatientProxyService, PatientIdentityReader, PhiGuard, MessageSealer],
  exports: [PatientProxyService, PatientIdentityReader, PhiGuard, MessageSealer],
})
export class PrivacyModule {}
