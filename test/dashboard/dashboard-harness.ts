import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, type AppConfig } from '@hemato/common';
import { createDataSource, runMigrations } from '@hemato/persistence';
import { createTestDatabase, testEnv } from '@hemato/testing';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { DataSource } from 'typeorm';
import { createAdminUser } from '../../apps/gateway/src/admin/auth/first-admin';
import { bootstrapGateway, type RunningGateway } from '../../apps/gateway/src/bootstrap';

/**
 * Helpers for dashboard tests (and the lead's end-to-end test): a gateway in-process on a fresh
 * migrated database, users, a real Chromium, sign-in and page openers.
 */

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = path.resolve(__dirname, '../../test-artifacts/dashboard');

export interface DashboardGateway {
  gateway: RunningGateway;
  baseUrl: string;
  config: AppConfig;
  /** A second connection for the test to insert and read rows with. */
  ds: DataSource;
  stop(): Promise<void>;
}

/** Migrates a fresh database and starts the gateway on it (any free port). `env` overrides the test env. */
export async function startDashboardGateway(
  label: string,
  env: Record<string, string> = {},
): Promise<DashboardGateway> {
  const databaseUrl = await createTestDatabase(label);
  const ds = await createDataSource({ url: databaseUrl }).initialize();
  await runMigrations(ds);
  const dataDir = await mkdtemp(path.join(tmpdir(), `hb-dash-${label}-`));
  const config = loadConfig(testEnv({ DATABASE_URL: databaseUrl, DATA_DIR: dataDir, ...env }));
  const gateway = await bootstrapGateway(config);
  return {
    gateway,
    baseUrl: gateway.urls.http,
    config,
    ds,
    stop: async () => {
      await gateway.app.close();
      await ds.destroy();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function createUser(
  ds: DataSource,
  email: string,
  role: 'admin' | 'viewer',
  password: string,
): Promise<void> {
  await createAdminUser(ds, { email, role, password });
}

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** A fresh browser profile (own cookies) with a laptop-sized window. */
export function newContext(browser: Browser): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 1366, height: 900 } });
}

/** Signs in through the form and waits for the order list. */
export async function signIn(page: Page, baseUrl: string, email: string, password: string): Promise<void> {
  await page.goto(`${baseUrl}/admin/login`);
  await page
    .getByLabel('E-mail')
    .waitFor({ timeout: 10_000 })
    .catch(async (err: unknown) => {
      await screenshot(page, 'sign-in-failure');
      throw err;
    });
  await page.getByLabel('E-mail').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Orders' }).waitFor();
}

/** Opens an order's page and waits until its timeline is shown. */
export async function openOrder(page: Page, baseUrl: string, orderId: string): Promise<void> {
  await page.goto(`${baseUrl}/admin/orders/${orderId}`);
  await page.getByRole('heading', { name: 'Timeline' }).waitFor();
}

/** The row of the order list for a filler order number. */
export function orderRow(page: Page, fillerOrderNumber: string) {
  return page.locator('tr', { has: page.getByText(fillerOrderNumber, { exact: true }) });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Inserts an order row as intake would (for tests that do not need the lifecycle). */
export async function insertOrder(
  ds: DataSource,
  o: {
    filler: string;
    placer?: string;
    status?: string;
    channel?: string;
    proxyRowId?: string;
    inboundId?: string;
    failedStep?: string;
    failureReason?: string;
  },
): Promise<string> {
  const rows: Array<{ id: string }> = await ds.query(
    `INSERT INTO orders (status, source_channel, filler_order_number, placer_order_number, patient_proxy_id, inbound_message_id,
                         test_system, test_code, test_display, tasks, failed_step, failure_reason)
     VALUES ($1, $2, $3, $4, $5, $6, 'LN', '34994-4', 'Peripheral blood smear', '{pbs_v1}', $7, $8) RETURNING id`,
    [
      o.status ?? 'received',
      o.channel ?? 'hl7',
      o.filler,
      o.placer ?? null,
      o.proxyRowId ?? null,
      o.inboundId ?? null,
      o.failedStep ?? null,
      o.failureReason ?? null,
    ],
  );
  const id = rows[0]!.id;
  await ds.query(
    `INSERT INTO order_events (order_id, type, to_status, actor, detail) VALUES ($1, 'received', $2, 'test', '{}')`,
    [id, o.status ?? 'received'],
  );
  return id;
}

/** Cookie header of a signed-in API session (for API-level assertions). */
export async function apiSignIn(
  baseUrl: string,
  email: string,
  password: string,
): Promise<{ status: number; cookie: string | null; body: any }> {
  const res = await fetch(`${baseUrl}/api/admin/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  const setCookie = res.headers.get('set-cookie');
  return {
    status: res.status,
    cookie: setCookie ? setCookie.split(';')[0]! : null,
    body: await res.json().catch(() => null),
  };
}

export async function ensureArtifacts(): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
}
