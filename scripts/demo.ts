/**
 * `npm run demo`: with `npm start` running, sends one HL7 ORM^O01 with a synthetic parasite smear over
 * MLLP, receives the ORU^R01 the bridge sends back (it listens where the all-in-one delivers HL7 results,
 * 127.0.0.1:2576 by default), and prints it with the order's dashboard URL. Then the same order as a FHIR
 * ServiceRequest (inline image) and the DiagnosticReport read back, with the FHIR API key `npm start`
 * generated (read from `<DATA_DIR>/secrets.json`, default `./.data`); if the gateway refuses it, the FHIR
 * part is skipped with a message.
 *
 * Options (flag or env): --base-url / DEMO_BASE_URL (http://127.0.0.1:3000), --mllp-host / DEMO_MLLP_HOST
 * (127.0.0.1), --mllp-port / DEMO_MLLP_PORT (2575), --result-port / DEMO_RESULT_PORT (2576, where the
 * bridge sends ORU^R01: its HL7_RESULT_PORT), --fhir-key / DEMO_FHIR_KEY (default: the all-in-one's key), --no-fhir,
 * --timeout-ms / DEMO_TIMEOUT_MS (120000).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseFhirApiKey } from '@hemato/common';
import { MllpClient } from '@hemato/hl7';
import { MllpResultReceiver } from '../libs/testing/src/mllp-result-receiver';
import { sampleOrm } from '../libs/testing/src/hl7-samples';
import { generateSmear } from '../libs/testing/src/smear';

function option(name: string, envName: string, fallback: string): string {
  const flag = process.argv.slice(2).find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (flag?.includes('=')) return flag.slice(flag.indexOf('=') + 1);
  return process.env[envName] ?? fallback;
}

const baseUrl = option('base-url', 'DEMO_BASE_URL', 'http://127.0.0.1:3000').replace(/\/$/, '');
const mllpHost = option('mllp-host', 'DEMO_MLLP_HOST', '127.0.0.1');
const mllpPort = Number(option('mllp-port', 'DEMO_MLLP_PORT', '2575'));
const resultPort = Number(option('result-port', 'DEMO_RESULT_PORT', '2576'));
const fhirKey = option('fhir-key', 'DEMO_FHIR_KEY', localFhirKey() ?? 'demo-key');
const withFhir = !process.argv.includes('--no-fhir') && process.env.DEMO_NO_FHIR !== '1';
const timeoutMs = Number(option('timeout-ms', 'DEMO_TIMEOUT_MS', '120000'));

/** The first FHIR API key the all-in-one generated (`npm start` keeps its secrets in DATA_DIR/secrets.json). */
function localFhirKey(): string | undefined {
  try {
    const file = path.resolve(process.env.DATA_DIR ?? '.data', 'secrets.json');
    const secrets = JSON.parse(readFileSync(file, 'utf8')) as { FHIR_API_KEYS?: string };
    const first = secrets.FHIR_API_KEYS?.split(',')[0]?.trim();
    if (!first) return undefined;
    const parsed = parseFhirApiKey(first, 0);
    return 'key' in parsed ? parsed.key : undefined;
  } catch {
    return undefined;
  }
}

/** Long fields (base64 images, PDFs) cut to a readable length. */
function trim(value: string, max = 100): string {
  return value.length <= max ? value : `${value.slice(0, 60)}…[${value.length} chars]`;
}

function printHl7(message: string) {
  for (const segment of message.split(/\r\n?|\n/).filter(Boolean)) {
    console.log(
      '  ' +
        segment
          .split('|')
          .map((f) => trim(f))
          .join('|'),
    );
  }
}

/** JSON with long strings trimmed. */
function printJson(value: unknown) {
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'string' ? trim(v, 160) : v), 2);
  console.log(text.replace(/^/gm, '  '));
}

/** The report with each contained resource as one line (an Observation as `name: value`). */
function summariseContained(report: Record<string, any>): Record<string, unknown> {
  const contained = (report.contained ?? []) as Array<Record<string, any>>;
  return {
    ...report,
    contained: contained.map((r) => {
      if (r.resourceType !== 'Observation') return `${r.resourceType}/${r.id}`;
      const name = r.code?.text ?? r.code?.coding?.[0]?.display ?? r.code?.coding?.[0]?.code;
      const q = r.valueQuantity as { value?: number; unit?: string } | undefined;
      const value = q
        ? `${q.value} ${q.unit ?? ''}`.trim()
        : (r.valueInteger ?? r.valueString ?? r.valueCodeableConcept?.text);
      return `Observation/${r.id} ${name}: ${trim(String(value), 80)}`;
    }),
  };
}

async function sleep(ms: number) {
  await new Promise((r) => setTimeout(r, ms));
}

async function checkGateway() {
  try {
    const res = await fetch(`${baseUrl}/health/live`);
    await res.body?.cancel();
  } catch {
    throw new Error(`No gateway answers at ${baseUrl}: start it first with \`npm start\` (or pass --base-url).`);
  }
}

async function hl7Demo(stamp: string, smear: Buffer): Promise<void> {
  const receiver = new MllpResultReceiver(resultPort);
  try {
    await receiver.start();
  } catch (err) {
    throw new Error(
      `Cannot listen for results on 127.0.0.1:${resultPort} (${err instanceof Error ? err.message : String(err)}). ` +
        'Is another demo running? Use --result-port with the port the bridge sends ORU^R01 to (HL7_RESULT_PORT).',
    );
  }
  const client = new MllpClient({ host: mllpHost, port: mllpPort, ackTimeoutMs: 30_000 });
  try {
    const placer = `DEMO-${stamp}`;
    const controlId = `DEMO${stamp}`;
    console.log(
      `\n== HL7: ORM^O01 (placer ${placer}, one 640x480 PNG smear with parasites) → mllp://${mllpHost}:${mllpPort}`,
    );
    const started = Date.now();
    const ack = await client.send(
      sampleOrm({ controlId, placer, images: [{ data: smear, subtype: 'PNG' }] }),
      controlId,
    );
    console.log(`   ACK ${ack.code}`);
    if (ack.code !== 'AA') throw new Error(`the bridge did not accept the order (ACK ${ack.code})`);
    console.log(`   waiting for the ORU^R01 on 127.0.0.1:${resultPort} …`);
    const oru = await receiver
      .waitFor((m) => m.includes(placer), timeoutMs)
      .catch(() => {
        throw new Error(
          `No ORU^R01 within ${Math.round(timeoutMs / 1000)} s. Check the order on the dashboard ` +
            `(${baseUrl}/admin/orders?q=${placer}) and that the bridge sends results to 127.0.0.1:${resultPort} (HL7_RESULT_PORT).`,
        );
      });
    // Keep listening a moment: the ACK goes out after the message is handed to us, and the bridge
    // retries a delivery whose ACK it never read.
    const elapsed = ((Date.now() - started) / 1000).toFixed(1);
    await sleep(1500);
    console.log(`\n== ORU^R01 received after ${elapsed} s (acknowledged AA):`);
    printHl7(oru);
    const orc = oru.split('\r').find((s) => s.startsWith('ORC|'));
    const filler = orc?.split('|')[3]?.split('^')[0] ?? placer;
    const b50 = oru.split('\r').some((s) => s.startsWith('OBX|') && (s.split('|')[5] ?? '').startsWith('B50^'));
    console.log(`\n   Diagnosis B50 (Plasmodium falciparum malaria) in the result: ${b50 ? 'yes' : 'no'}`);
    console.log(`   Dashboard: ${baseUrl}/admin/orders?q=${encodeURIComponent(filler)}  (filler number ${filler})`);
  } finally {
    client.close();
    await receiver.stop();
  }
}

async function fhir(path: string, init: { method?: string; body?: unknown } = {}) {
  const res = await fetch(`${baseUrl}/fhir${path}`, {
    method: init.method ?? 'GET',
    headers: {
      accept: 'application/fhir+json',
      authorization: `Bearer ${fhirKey}`,
      ...(init.body ? { 'content-type': 'application/fhir+json' } : {}),
    },
    body: init.body ? JSON.stringify(init.body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as any) : undefined };
}

async function fhirDemo(stamp: string, smear: Buffer): Promise<void> {
  console.log(`\n== FHIR: POST ${baseUrl}/fhir/ServiceRequest (contained Patient and Media with the smear inline)`);
  const serviceRequest = {
    resourceType: 'ServiceRequest',
    identifier: [{ system: 'urn:demo:placer', value: `DEMO-FHIR-${stamp}` }],
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '34994-4', display: 'Smear morphology panel - Blood' }] },
    subject: { reference: '#pat' },
    authoredOn: new Date().toISOString(),
    supportingInfo: [{ reference: '#img' }],
    contained: [
      {
        resourceType: 'Patient',
        id: 'pat',
        // Synthetic, and distinct from every other value of the order: the PHI guard refuses to send
        // Hemato.AI anything that contains a patient value (a family name "Demo" would match "DEMO-…").
        identifier: [{ system: 'urn:demo:mrn', value: 'MRN48213377' }],
        name: [{ family: 'Lindqvist-Oduya', given: ['Astrid'] }],
        birthDate: '1975-03-14',
      },
      {
        resourceType: 'Media',
        id: 'img',
        status: 'completed',
        subject: { reference: '#pat' },
        content: { contentType: 'image/png', title: 'smear.png', data: smear.toString('base64') },
      },
    ],
  };
  const created = await fhir('/ServiceRequest', { method: 'POST', body: serviceRequest });
  if (created.status === 401) {
    console.log(
      "   skipped: the gateway refused the FHIR API key (401). Pass --fhir-key=<one of the gateway's FHIR_API_KEYS>" +
        ' (`npm start` keeps its own in .data/secrets.json) to see a DiagnosticReport too.',
    );
    return;
  }
  if (created.status !== 201 && created.status !== 200) {
    console.log(`   the gateway answered ${created.status}:`);
    printJson(created.body);
    throw new Error('the FHIR order was not accepted');
  }
  const id = String(created.body.id);
  console.log(`   ${created.status}: order ${id}, Task status ${created.body.status}`);
  console.log(`   waiting for GET /fhir/DiagnosticReport?based-on=ServiceRequest/${id} …`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await fhir(`/DiagnosticReport?based-on=ServiceRequest/${id}`);
    const report = found.status === 200 ? found.body?.entry?.[0]?.resource : undefined;
    if (report) {
      console.log('\n== DiagnosticReport (contained resources summarised, long strings trimmed):');
      printJson(summariseContained(report));
      console.log(`\n   Dashboard: ${baseUrl}/admin/orders/${id}`);
      return;
    }
    if (Date.now() > deadline)
      throw new Error(`No DiagnosticReport within ${Math.round(timeoutMs / 1000)} s (order ${id})`);
    await sleep(1000);
  }
}

async function main() {
  await checkGateway();
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const smear = generateSmear({ width: 640, height: 480, format: 'png', seed: 7, parasites: true });
  await hl7Demo(stamp, smear);
  if (withFhir) await fhirDemo(stamp, smear);
  else console.log('\n== FHIR part skipped (--no-fhir).');
  console.log('\nDone.');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
