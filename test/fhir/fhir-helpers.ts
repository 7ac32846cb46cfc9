import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { TestFhirServer, createTestDatabase, testEnv } from '@hemato/testing';
import type { DataSource } from 'typeorm';
import { bootstrapGateway, type RunningGateway } from '../../apps/gateway/src/bootstrap';

export const API_KEY = 'fhir-test-key-0123456789';

/** A migrated database, a data source on it, and the gateway started in-process with FHIR settings. */
export async function startGateway(
  label: string,
  env: Record<string, string | undefined> = {},
): Promise<{ gw: RunningGateway; ds: DataSource; base: string; databaseUrl: string; env: NodeJS.ProcessEnv }> {
  const databaseUrl = await createTestDatabase(label);
  const ds = await createDataSource({ url: databaseUrl }).initialize();
  await runMigrations(ds);
  const fullEnv = testEnv({ DATABASE_URL: databaseUrl, FHIR_API_KEYS: API_KEY, ...env });
  const gw = await bootstrapGateway(loadConfig(fullEnv));
  return { gw, ds, base: gw.urls.http!, databaseUrl, env: fullEnv };
}

export async function fhirFetch(
  url: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string>; token?: string | null } = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const headers: Record<string, string> = { accept: 'application/fhir+json', ...init.headers };
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? API_KEY}`;
  if (init.body !== undefined) headers['content-type'] ??= 'application/fhir+json';
  const res = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers,
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** Serves a JSON document (a JWKS) on a local port. */
export async function serveJson(doc: unknown): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A 1x1 PNG, as base64 (a stand-in smear image for inline attachments). */
export const PNG_1x1 =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

export function serviceRequest(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'ServiceRequest',
    identifier: [{ system: 'urn:oid:1.2.3.4.placer', value: `SR-${Math.random().toString(36).slice(2, 10)}` }],
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '34994-4', display: 'Smear morphology panel - Blood' }] },
    subject: { reference: 'Patient/p1' },
    authoredOn: '2026-11-27T08:00:00Z',
    ...over,
  };
}

export function patient(id = 'p1', mrn = 'MRN-0001'): Record<string, unknown> {
  return {
    resourceType: 'Patient',
    id,
    identifier: [
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
        system: 'urn:oid:1.2.3.4.mrn',
        value: mrn,
      },
    ],
    name: [{ family: 'Testperson', given: ['Alex'] }],
    birthDate: '1970-01-01',
    gender: 'female',
  };
}

/** A port that was free a moment ago (the gateway must know its own URL for auto-created Subscriptions). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * A test EHR (static bearer token) and the gateway following it, on a port known up front: the gateway's
 * PUBLIC_BASE_URL is where the EHR sends Subscription notifications (`hook`).
 */
export async function startGatewayWithEhr(
  label: string,
  env: Record<string, string | undefined> = {},
  ehrToken = 'ehr-static-token',
): Promise<{ ehr: TestFhirServer; gw: RunningGateway; ds: DataSource; hook: string; close(): Promise<void> }> {
  const ehr = await TestFhirServer.start({ auth: { kind: 'bearer', token: ehrToken } });
  const port = await freePort();
  const { gw, ds } = await startGateway(label, {
    PORT: String(port),
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    FHIR_EHR_BASE_URL: ehr.baseUrl,
    FHIR_EHR_AUTH: 'bearer',
    FHIR_EHR_TOKEN: ehrToken,
    ...env,
  });
  return {
    ehr,
    gw,
    ds,
    hook: `http://127.0.0.1:${port}/fhir/subscription-hook`,
    async close() {
      await gw.app.close();
      await ds.destroy();
      await ehr.close();
    },
  };
}

/** A stored report (version `version`) for an order, as the worker leaves it once Hemato.AI answered. */
export async function addStoredReport(ds: DataSource, orderId: string, version = 1): Promise<void> {
  await ds.query(`INSERT INTO reports (order_id, version, hemato_study_id, raw) VALUES ($1, $2, 'study-1', $3)`, [
    orderId,
    version,
    JSON.stringify({
      pbs_study_id: 'study-1',
      version,
      file_ids: [],
      feature_statistics: { 'rbc-density': { value: '4512.33', unit: 'cells/megapixel' } },
      pathology_report: 'No parasites seen.',
    }),
  ]);
}
