import { JobName } from '@hemato/common';
import { Reflector, type DiscoveryService } from '@nestjs/core';
import { HandlesJob } from './job-handler';
import { JobRegistry } from './job-registry';

@HandlesJob(JobName.Echo)
class EchoOnly {
  async handle() {
    return 'ok';
  }
}

function registryWith(...instances: object[]) {
  const discovery = {
    getProviders: () => instances.map((instance) => ({ instance, metatype: instance.constructor })),
  } as unknown as DiscoveryService;
  return new JobRegistry(discovery, new Reflector());
}

describe('JobRegistry', () => {
  it('refuses to start when a job name has no handler, naming the missing ones', () => {
    const missing = Object.values(JobName).filter((n) => n !== JobName.Echo);
    expect(() => registryWith(new EchoOnly()).onModuleInit()).toThrow(
      `Worker refuses to start: no handler for job name(s) ${missing.join(', ')}`,
    );
  });

  it('refuses two handlers for one job name', () => {
    expect(() => registryWith(new EchoOnly(), new EchoOnly()).onModuleInit()).toThrow(
      'Two handlers for job maintenance.echo',
    );
  });
});
