import { Module } from '@nestjs/common';
import { MLLP_STATS } from '../admin/health/mllp-stats';
import { Hl7IntakeService } from './hl7-intake.service';
import { Hl7ListenerService } from './hl7-listener.service';
import { ResultAckIntake } from './result-ack-intake.service';

/** HL7 v2 orders in over MLLP, and ACKs of our results sent back on a connection of their own (needs the global config, persistence, queue and orders modules). */
@Module({
  providers: [
    Hl7IntakeService,
    ResultAckIntake,
    Hl7ListenerService,
    { provide: MLLP_STATS, useExisting: Hl7ListenerService },
  ],
  exports: [Hl7ListenerService, MLLP_STATS],
})
export class Hl7Module {}
