import { zipBomb } from '@hemato/testing';
import type { DataSource } from 'typeorm';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import { fhirFetch, patient, serviceRequest, startGateway } from './fhir-helpers';

jest.setTimeout(120_000);

const MAX_UNPACKED = 64 * 1024 * 1024;

/**
 * A zip in a FHIR order (an Attachment's data) is inflated to be checked (JPEG/PNG entries,
 * IMAGE_ZIP_MAX_UNPACKED_BYTES). A bomb takes seconds to inflate up to the limit; in one go that held the
 * gateway's event loop, so no other HTTP request (another client's order, a health probe) was answered until
 * the bomb was refused. The inflate now lets other work run between slices.
 */
describe('a FHIR order carrying a zip bomb inline', () => {
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;

  beforeAll(async () => {
    ({ gw, ds, base } = await startGateway('fhirzipbomb', {
      IMAGE_ZIP_MAX_UNPACKED_BYTES: String(MAX_UNPACKED),
      IMAGE_MAX_BYTES: String(8 * 1024 * 1024),
    }));
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
  });

  it('is refused (422) while other requests are answered meanwhile', async () => {
    const zip = zipBomb(MAX_UNPACKED + 16 * 1024 * 1024);
    const sr = serviceRequest({
      contained: [
        patient('p', 'MRN-ZB-1'),
        {
          resourceType: 'Media',
          id: 'm',
          status: 'completed',
          content: { contentType: 'application/zip', data: zip.toString('base64'), title: 'smears.zip' },
        },
      ],
      subject: { reference: '#p' },
      supportingInfo: [{ reference: '#m' }],
    });
    const answered: string[] = [];
    const bombed = fhirFetch(`${base}/fhir/ServiceRequest`, { body: sr }).then((r) => {
      answered.push('bomb');
      return r;
    });
    // The gateway has the whole body and is inflating by now; a timer of this process (the gateway's) runs
    // only when the inflate lets it.
    await new Promise((r) => setTimeout(r, 500));
    // Three requests one after the other, each sent once the previous one is answered: a liveness probe, and
    // another order read.
    for (const path of ['/health/live', '/fhir/metadata', '/health/live']) {
      const r = await fetch(`${base}${path}`);
      expect(r.status).toBe(200);
      await r.text();
      answered.push('other');
    }
    const refused = await bombed;
    expect(refused.status).toBe(422);
    expect(JSON.stringify(refused.body)).toContain('IMAGE_ZIP_MAX_UNPACKED_BYTES');
    // The other requests were answered while the bomb was being inflated, not after it.
    expect(answered).toEqual(['other', 'other', 'other', 'bomb']);
    const id = (sr.identifier as Array<{ system: string; value: string }>)[0]!;
    const stored = await ds.query(`SELECT count(*)::int AS n FROM orders WHERE external_key = $1`, [
      `fhir:${id.system}|${id.value}`,
    ]);
    expect(stored[0].n).toBe(0);
  });
});
