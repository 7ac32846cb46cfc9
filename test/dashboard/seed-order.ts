import path from 'node:path';
import type { AppConfig } from '@hemato/common';
import { LocalFileStore } from '@hemato/orders';
import { PatientProxyService } from '@hemato/privacy';
import { generateSmearWithTruth } from '@hemato/testing';
import type { DataSource } from 'typeorm';

/** A synthetic patient: the name the page must hide until an admin reveals it. */
export const PATIENT = { family: 'Testperson', given: ['Jane'], mrn: 'MRN-778899' };

export interface SeededOrder {
  orderId: string;
  inboundId: string;
  imageId: string;
  filler: string;
  /** The heat-map spots written into the report, in image pixels. */
  spots: Array<{ x: number; y: number; r: number }>;
  width: number;
  height: number;
}

/**
 * A completed order as the lifecycle leaves it: patient proxy (identity encrypted), the HL7 message
 * it came in, a stored smear image, a Hemato.AI report whose heat map points at the parasitised
 * cells of that image, and two deliveries (an HL7 ACK, a FHIR OperationOutcome).
 */
export async function seedReportedOrder(ds: DataSource, config: AppConfig, filler: string): Promise<SeededOrder> {
  const proxies = new PatientProxyService(config);
  const proxy = await proxies.resolve(ds.manager, {
    primary: { authority: 'HOSP', value: PATIENT.mrn },
    identifiers: [{ authority: 'HOSP', value: PATIENT.mrn, type: 'MR' }],
    name: { family: PATIENT.family, given: PATIENT.given },
    birthDate: '1970-04-01',
    sex: 'F',
  });
  const raw = [
    `MSH|^~\\&|LIS|LAB|HEMATO-BRIDGE|HEMATO|20261127101500||ORM^O01|CTRL-${filler}|P|2.5.1`,
    `PID|1||${PATIENT.mrn}^^^HOSP^MR||${PATIENT.family}^${PATIENT.given[0]}||19700401|F`,
    `ORC|NW|PL-${filler}`,
    `OBR|1|PL-${filler}||34994-4^Blood smear^LN`,
  ].join('\r');
  const [inbound] = (await ds.query(
    `INSERT INTO inbound_messages (channel, sender, control_id, message_type, raw, status, ack_code, ack)
     VALUES ('hl7', 'LIS|LAB', $1, 'ORM^O01', $2, 'accepted', 'AA', $3) RETURNING id`,
    [
      `CTRL-${filler}`,
      raw,
      `MSH|^~\\&|HEMATO-BRIDGE|HEMATO|LIS|LAB|20261127101501||ACK^O01|A1|P|2.5.1\rMSA|AA|CTRL-${filler}`,
    ],
  )) as Array<{ id: string }>;
  const [order] = (await ds.query(
    `INSERT INTO orders (status, source_channel, filler_order_number, placer_order_number, patient_proxy_id, inbound_message_id,
                         test_system, test_code, test_display, tasks, hemato_study_id, hemato_progress, images_complete)
     VALUES ('completed', 'hl7', $1, $2, $3, $4, 'LN', '34994-4', 'Blood smear', '{pbs_v1}', 'study-42', 1, true) RETURNING id`,
    [filler, `PL-${filler}`, proxy.id, inbound!.id],
  )) as Array<{ id: string }>;
  const orderId = order!.id;
  const steps = [
    'received',
    'ready',
    'study_created',
    'uploading',
    'tasks_requested',
    'processing',
    'report_ready',
    'delivering',
    'completed',
  ];
  for (let i = 1; i < steps.length; i++) {
    await ds.query(
      `INSERT INTO order_events (order_id, type, from_status, to_status, actor, detail) VALUES ($1, 'status_changed', $2, $3, 'worker', $4)`,
      [orderId, steps[i - 1], steps[i], JSON.stringify(steps[i] === 'processing' ? { progress: 0.5 } : {})],
    );
    if (steps[i] === 'ready') {
      // Hemato.AI was unavailable at first: a failed try of create-study, retried.
      await ds.query(
        `INSERT INTO order_events (order_id, type, actor, detail) VALUES ($1, 'step_retry', 'worker', $2)`,
        [
          orderId,
          JSON.stringify({
            step: 'orders.create-study',
            attempt: 2,
            attempts: 8,
            reason: 'Hemato.AI POST /pbs: 503 service unavailable',
            nextTryInMs: 8000,
          }),
        ],
      );
    }
  }

  const width = 640;
  const height = 480;
  const { image, truth } = generateSmearWithTruth({ width, height, format: 'png', seed: 7, parasites: true });
  const store = new LocalFileStore(path.resolve(config.orders.IMAGE_DIR ?? path.join(config.core.DATA_DIR, 'images')));
  const stored = await store.put(image, 10_000_000);
  const fileId = `sha224-i-${stored.sha224}`;
  const [img] = (await ds.query(
    `INSERT INTO image_files (order_id, name, source, status, content_hash, size_bytes, media_type, storage_key, hemato_file_id)
     VALUES ($1, 'smear-1.png', 'inline', 'stored', $2, $3, 'image/png', $4, $5) RETURNING id`,
    [orderId, stored.sha224, stored.size, stored.key, fileId],
  )) as Array<{ id: string }>;

  const spots = truth.parasiteCells.map((c) => ({ x: c.x, y: c.y, r: Math.round(truth.rbcRadius * 1.5) }));
  const results = {
    pbs_study_id: 'study-42',
    file_ids: [fileId],
    version: 1,
    feature_statistics: {
      rbc_count: { value: String(truth.rbc), unit: 'cells' },
      parasitemia: { value: '12.5', unit: '%' },
    },
    morphological_findings: {
      ring_form_trophozoite: {
        count: String(truth.parasites),
        heat_map: spots.map((s) => ({ center: [s.x, s.y], radius: s.r, file_id: fileId })),
      },
      target_cell: { count: '0', heat_map: [] },
    },
    diagnostic_report: {
      differential_diagnosis: [
        {
          'icd10-code': 'B50',
          'english-long': 'Plasmodium falciparum malaria',
          confidence: '0.91',
          score: '8.7',
          'clinical-significance': 'high',
        },
        {
          'icd10-code': 'D59.9',
          'english-long': 'Acquired haemolytic anaemia, unspecified',
          confidence: '0.06',
          score: '1.2',
        },
      ],
    },
    pathology_report: 'Ring forms of Plasmodium falciparum in red cells; parasitaemia about 12.5 %.',
  };
  const [report] = (await ds.query(
    `INSERT INTO reports (order_id, version, hemato_study_id, raw) VALUES ($1, 1, 'study-42', $2) RETURNING id`,
    [orderId, JSON.stringify(results)],
  )) as Array<{ id: string }>;
  await ds.query(
    `INSERT INTO deliveries (order_id, report_id, target, status, attempts, last_attempt_at, outcome, response, control_id)
     VALUES ($1, $2, 'hl7', 'acknowledged', 1, now(), 'AA', $3, 'ORU-1'),
            ($1, $2, 'fhir', 'failed', 3, now(), '422', $4, 'tx-1')`,
    [
      orderId,
      report!.id,
      'MSH|^~\\&|LIS|LAB|HEMATO-BRIDGE|HEMATO|20261127103000||ACK^R01|X9|P|2.5.1\rMSA|AA|ORU-1',
      JSON.stringify({
        resourceType: 'OperationOutcome',
        issue: [{ severity: 'error', code: 'invalid', diagnostics: 'subject is required' }],
      }),
    ],
  );
  return { orderId, inboundId: inbound!.id, imageId: img!.id, filler, spots, width, height };
}
