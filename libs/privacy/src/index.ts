export * from './patient-identity';
export * from './phi-cipher';
export * from './patient-proxy.service';
export * from './phi-guard';
export * from './privacy.module';
export * from './phi-guard-context';
export * from './message-sealer';
export * from './phi-key-rotation';
