import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { RunningGateway } from '../../apps/gateway/src/bootstrap';
import type { DataSource } from 'typeorm';
import { PNG_1x1, fhirFetch, patient, serviceRequest, startGateway } from './fhir-helpers';

const run = promisify(execFile);
const CLI = path.resolve(__dirname, '../../dist/scripts/retention.js');

/** `npm run retention` (compiled) against the test database: its JSON line. */
async function retentionCli(env: NodeJS.ProcessEnv, ...args: string[]) {
  const { stdout } = await run(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, DATABASE_URL: env.DATABASE_URL, RETENTION_DAYS: '0', LOG_LEVEL: 'silent' },
  });
  return JSON.parse(stdout.trim()) as Record<string, unknown>;
}

/**
 * A FHIR order after RETENTION_DAYS: its request body (the Patient in it) and its notes are erased, and its
 * ServiceRequest still reads, its subject saying the identity was erased (data-absent-reason `masked`).
 */
describe('FHIR orders under retention', () => {
  let gw: RunningGateway;
  let ds: DataSource;
  let base: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    ({ gw, ds, base, env } = await startGateway('fhirretention', { RETENTION_DAYS: '30' }));
  });
  afterAll(async () => {
    await gw?.app.close();
    await ds?.destroy();
  });

  it('erases the request body, the note and the identity; the ServiceRequest reads with an erased subject', async () => {
    const created = await fhirFetch(`${base}/fhir`, {
      body: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:0b0e7d0a-2222-4111-8111-000000000001',
            resource: patient('pt-ret', 'MRN-FHIR-RET'),
            request: { method: 'POST', url: 'Patient' },
          },
          {
            fullUrl: 'urn:uuid:0b0e7d0a-2222-4111-8111-000000000002',
            resource: serviceRequest({
              subject: { reference: 'urn:uuid:0b0e7d0a-2222-4111-8111-000000000001' },
              note: [{ text: 'Ring Alex Testperson at home' }],
            }),
            request: { method: 'POST', url: 'ServiceRequest' },
          },
          {
            fullUrl: 'urn:uuid:0b0e7d0a-2222-4111-8111-000000000003',
            resource: {
              resourceType: 'Media',
              status: 'completed',
              content: { contentType: 'image/png', data: PNG_1x1, title: 'smear-1.png' },
            },
            request: { method: 'POST', url: 'Media' },
          },
        ],
      },
    });
    expect(created.status).toBe(200);
    const orderId = /ServiceRequest\/([^/]+)/.exec(String(created.body.entry[1].response.location))![1]!;
    const before = await fhirFetch(`${base}/fhir/ServiceRequest/${orderId}`);
    expect(before.body.subject).toEqual({ identifier: { system: 'urn:oid:1.2.3.4.mrn', value: 'MRN-FHIR-RET' } });

    // Finished forty days ago.
    await ds.query(
      `UPDATE orders SET status = 'completed', status_changed_at = now() - interval '40 days' WHERE id = $1`,
      [orderId],
    );
    await ds.query(`UPDATE patient_proxies SET updated_at = now() - interval '40 days'`);
    // `npm run retention -- --check --days 30` counts what a 30-day policy would erase, and erases nothing;
    // without --check it erases it (the worker's job does the same on its schedule).
    const counts = { orders: 1, inboundMessages: 1, patientIdentities: 1 };
    expect(await retentionCli(env, '--check', '--days', '30')).toEqual({ retention_days: 30, would_erase: counts });
    expect(await retentionCli(env, '--check', '--days=50')).toEqual({
      retention_days: 50,
      would_erase: { orders: 0, inboundMessages: 0, patientIdentities: 0 },
    });
    const untouched: Array<{ purged_at: Date | null }> = await ds.query(`SELECT purged_at FROM orders WHERE id = $1`, [
      orderId,
    ]);
    expect(untouched[0]!.purged_at).toBeNull();
    expect(await retentionCli(env, '--days', '30')).toEqual({ retention_days: 30, erased: counts });
    expect(await retentionCli(env, '--check', '--days', '30')).toEqual({
      retention_days: 30,
      would_erase: { orders: 0, inboundMessages: 0, patientIdentities: 0 },
    });
    // Without a period it refuses, rather than erasing with a default.
    await expect(retentionCli(env)).rejects.toMatchObject({ code: 2 });

    const rows: Array<{ raw: string; details: { fhir: Record<string, unknown> } }> = await ds.query(
      `SELECT im.raw, o.details FROM orders o JOIN inbound_messages im ON im.id = o.inbound_message_id WHERE o.id = $1`,
      [orderId],
    );
    expect(rows[0]!.raw).toBe('');
    expect(rows[0]!.details.fhir.note).toBeUndefined();
    expect(JSON.stringify(rows[0]!.details)).not.toContain('Testperson');

    const after = await fhirFetch(`${base}/fhir/ServiceRequest/${orderId}`);
    expect(after.status).toBe(200);
    expect(after.body.subject).toEqual({
      display: 'Patient identity erased under the retention policy',
      extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'masked' }],
    });
  });
});
