import { MllpClient } from '@hemato/hl7';
import { STUDY_FILES_PREFIX, studyFilesBase } from '@hemato/orders';
import { generateSmear, startPipeline, type Pipeline } from '@hemato/testing';
import { sendHl7Order } from './support/hl7-order';

/**
 * The reference: the callback URL "must support HTTPS with a valid server certificate". Workflow 2 hands
 * Hemato.AI its callback URL inside the list document; with a plain-http PUBLIC_BASE_URL and Hemato.AI
 * reached over TLS, it must not be handed one (as workflow 1's /tasks is not): the order is polled.
 */
describe('workflow 2: the list document names a callback only where Hemato.AI can use it', () => {
  const smear = generateSmear({ width: 200, height: 150, format: 'png', seed: 3 });

  async function listFor(p: Pipeline, placer: string): Promise<Record<string, unknown>> {
    const client = new MllpClient({ host: '127.0.0.1', port: p.mllpPort, ackTimeoutMs: 20_000 });
    try {
      const order = await sendHl7Order(p, client, placer, { images: [{ data: smear, subtype: 'PNG' }] });
      const base = studyFilesBase(p.config.core.PUBLIC_BASE_URL!, p.config.security.CALLBACK_SIGNING_SECRET, order.id);
      const path = base.slice(base.indexOf(STUDY_FILES_PREFIX));
      const res = await fetch(`${p.httpUrl}${path}/list.json`);
      expect(res.status).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    } finally {
      client.close();
    }
  }

  it('no http:// callback_url for a Hemato.AI reached over https', async () => {
    const p = await startPipeline(
      'wf2cbtls',
      {
        HEMATO_WORKFLOW: '2',
        HEMATO_BASE_URL: 'https://dev.api.hemato.ai',
        PUBLIC_BASE_URL: 'http://bridge.hospital.example:8080',
      },
      { worker: false },
    );
    try {
      const list = await listFor(p, 'PL-WF2-TLS');
      expect(list.files).toEqual([
        expect.stringMatching(/^http:\/\/bridge\.hospital\.example:8080\/hemato\/studies\//),
      ]);
      expect(list).not.toHaveProperty('callback_url');
    } finally {
      await p.close();
    }
  });

  it('an https PUBLIC_BASE_URL gives an https callback_url', async () => {
    const p = await startPipeline(
      'wf2cbhttps',
      {
        HEMATO_WORKFLOW: '2',
        HEMATO_BASE_URL: 'https://dev.api.hemato.ai',
        PUBLIC_BASE_URL: 'https://bridge.hospital.example',
      },
      { worker: false },
    );
    try {
      const list = await listFor(p, 'PL-WF2-HTTPS');
      expect(list.callback_url).toMatch(/^https:\/\/bridge\.hospital\.example\/hemato\/callback\/order%3A/);
    } finally {
      await p.close();
    }
  });
});
