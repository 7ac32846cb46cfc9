import { createHash } from 'node:crypto';
import { normalizeReportResults, toUcum, type ReportResults } from '@hemato/hemato-client';
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  Device,
  DiagnosticReport,
  Observation,
  Provenance,
  Patient,
  Reference,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import { FhirSystems, Loinc } from '../systems';
import { textToPdf } from './report-pdf';

/** What the builder needs to know about one stored report and its order. No PHI beyond the subject reference. */
export interface ReportBuildInput {
  orderId: string;
  fillerOrderNumber: string;
  placerOrderNumber?: string | null;
  /** `reports.version`; > 1 makes the DiagnosticReport `corrected`. */
  version: number;
  /** `reports.raw`: the Hemato.AI results. */
  results: ReportResults;
  /** When we fetched the report (DiagnosticReport.issued). */
  issued: Date;
  /** Specimen collection time or order time (DiagnosticReport.effectiveDateTime). */
  effective: Date | string;
  /**
   * The patient: a reference in the EHR (`Patient/123` or absolute) or, in our read API, an identifier.
   * Left out only by the read API for an order without a patient; an EHR write always has a Patient.
   */
  subject?: { reference: string } | { identifier: { system?: string; value: string } };
  /** The ServiceRequest the report answers (basedOn): a reference, or a logical reference by placer identifier. */
  basedOn?: Reference<ServiceRequest> | null;
  specimens?: string[];
  /** Who is named as performer (display only). */
  performerDisplay?: string;
  /**
   * The results of the versions before this one, newest first. An Observation they had and this version
   * has not is sent (as last reported) `entered-in-error`, so the EHR does not keep a withdrawn result final.
   */
  earlierResults?: ReportResults[];
}

/** The resources that make up one report, linked by `urn:uuid` full URLs. */
export interface ReportResources {
  diagnosticReport: DiagnosticReport;
  observations: Observation[];
  /** Observations of earlier versions that this one no longer has, as `entered-in-error` (not in `result`). */
  retracted: Observation[];
  device: Device;
  provenance: Provenance;
  /** fullUrl of each resource, by object. */
  fullUrls: Map<Resource, string>;
}

/** A deterministic UUID (v4 layout) from a name, so a rebuilt Bundle has the same `urn:uuid`s. */
export function stableUuid(name: string): string {
  const h = createHash('sha256').update(name).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function num(v: string | number | null | undefined): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v.trim());
    return Number.isFinite(n) ? n : null;
  }
  return null;
}

/** A FHIR `code` may not have leading/trailing or doubled whitespace. */
function asCode(s: string): string {
  return s.trim().replace(/\s+/g, ' ');
}

function iso(d: Date | string): string {
  return typeof d === 'string' ? d : d.toISOString();
}

/** The report as plain text (DiagnosticReport.presentedForm). */
export function reportText(input: ReportBuildInput): string {
  return textOf(input, normalizeReportResults(input.results).results);
}

/** {@link reportText} of results already cleaned and checked. */
function textOf(input: ReportBuildInput, r: ReportResults): string {
  const lines = [
    `Hemato.AI peripheral blood smear report`,
    `Order: ${input.fillerOrderNumber}${input.placerOrderNumber ? ` (placer ${input.placerOrderNumber})` : ''}`,
    `Study: ${r.pbs_study_id}, report version ${input.version}${input.version > 1 ? ' (corrected)' : ''}`,
    '',
    'Pathology report:',
    r.pathology_report ?? '',
    '',
    'Feature statistics:',
    ...Object.entries(r.feature_statistics ?? {}).map(([k, f]) => `  ${k}: ${f.value} ${f.unit}`),
    '',
    'Morphological findings:',
    ...Object.entries(r.morphological_findings ?? {}).map(([k, f]) => `  ${k}: ${f.count}`),
    '',
    'Differential diagnosis:',
    ...(r.diagnostic_report?.differential_diagnosis ?? []).map(
      (d) =>
        `  ${d['icd10-code']} ${d['english-long'] ?? d['english-short'] ?? ''} (score ${d.score}, confidence ${d.confidence})`,
    ),
  ];
  return lines.join('\n') + '\n';
}

/**
 * Builds the DiagnosticReport, one Observation per feature statistic (UCUM valueQuantity) and per
 * morphological finding (count), the morphology narrative (LOINC 18314-5), the Hemato.AI Device and a
 * Provenance naming the report version. Every resource carries an identifier derived from our order
 * id, so writing them again updates instead of duplicating.
 */
export function buildReportResources(input: ReportBuildInput): ReportResources {
  // Cleaned and checked again (a report stored before reports were): nothing malformed reaches a resource.
  const r = normalizeReportResults(input.results).results;
  const fullUrls = new Map<Resource, string>();
  const url = (name: string) => `urn:uuid:${stableUuid(`${input.orderId}/${name}`)}`;
  const subject: Reference<Patient> | undefined = !input.subject
    ? undefined
    : 'reference' in input.subject
      ? { reference: input.subject.reference }
      : { identifier: input.subject.identifier };
  const effective = iso(input.effective);
  const issued = input.issued.toISOString();
  const status: DiagnosticReport['status'] = input.version > 1 ? 'corrected' : 'final';
  const obsStatus: Observation['status'] = input.version > 1 ? 'corrected' : 'final';

  const device: Device = {
    resourceType: 'Device',
    identifier: [{ system: FhirSystems.device, value: 'hemato-ai' }],
    status: 'active',
    manufacturer: 'Hemato.AI',
    deviceName: [{ name: 'Hemato.AI Diagnostic API', type: 'manufacturer-name' }],
    type: { text: 'AI peripheral blood smear analysis service' },
  };
  const deviceUrl = 'urn:uuid:' + stableUuid('device/hemato-ai');
  fullUrls.set(device, deviceUrl);

  const labCategory: CodeableConcept[] = [
    { coding: [{ system: FhirSystems.observationCategory, code: 'laboratory', display: 'Laboratory' }] },
  ];
  const base = (key: string, code: CodeableConcept): Observation => ({
    resourceType: 'Observation',
    identifier: [{ system: FhirSystems.observation, value: `${input.orderId}/${key}` }],
    status: obsStatus,
    category: labCategory,
    code,
    ...(subject ? { subject } : {}),
    effectiveDateTime: effective,
    issued,
    device: { reference: deviceUrl, display: 'Hemato.AI' },
    ...(input.basedOn ? { basedOn: [input.basedOn] } : {}),
  });

  /** One Observation per feature statistic, per morphological finding, and the narrative. */
  const observationsOf = (r: ReportResults): Observation[] => {
    const list: Observation[] = [];
    for (const [key, stat] of Object.entries(r.feature_statistics ?? {})) {
      const o = base(`feature/${key}`, {
        coding: [{ system: FhirSystems.feature, code: asCode(key), display: key }],
        text: key,
      });
      const value = num(stat.value);
      const ucum = toUcum(stat.unit);
      if (value === null) o.valueString = `${stat.value} ${stat.unit ?? ''}`.trim();
      else
        o.valueQuantity = ucum
          ? { value, unit: ucum.unit, system: FhirSystems.ucum, code: ucum.code }
          : { value, ...(stat.unit ? { unit: stat.unit } : {}) };
      list.push(o);
    }
    for (const [key, finding] of Object.entries(r.morphological_findings ?? {})) {
      const o = base(`finding/${key}`, {
        coding: [{ system: FhirSystems.finding, code: asCode(key), display: key }],
        text: `${key} count`,
      });
      const count = num(finding.count);
      if (count !== null && Number.isInteger(count)) o.valueInteger = count;
      else o.valueString = String(finding.count);
      list.push(o);
    }
    if (r.pathology_report) {
      const o = base('narrative', {
        coding: [{ system: FhirSystems.loinc, ...Loinc.morphologyNarrative }],
        text: 'Morphology narrative',
      });
      o.valueString = r.pathology_report;
      list.push(o);
    }
    return list;
  };
  const observations = observationsOf(r);
  observations.forEach((o) => fullUrls.set(o, url(`observation/${o.identifier![0]!.value}`)));
  // What an earlier version reported and this one does not: retracted, as last reported, never left final.
  const current = new Set(observations.map((o) => o.identifier![0]!.value));
  const retracted: Observation[] = [];
  for (const earlier of input.earlierResults ?? []) {
    for (const o of observationsOf(normalizeReportResults(earlier).results)) {
      const key = o.identifier![0]!.value!;
      if (current.has(key)) continue;
      current.add(key);
      const gone: Observation = { ...o, status: 'entered-in-error' };
      retracted.push(gone);
      fullUrls.set(gone, url(`observation/${key}`));
    }
  }

  const conclusionCode: CodeableConcept[] = (r.diagnostic_report?.differential_diagnosis ?? [])
    .filter((d) => d['icd10-code'])
    .map((d) => ({
      coding: [
        {
          system: FhirSystems.icd10,
          code: asCode(d['icd10-code']),
          ...(d['english-long'] || d['english-short'] ? { display: d['english-long'] ?? d['english-short'] } : {}),
        },
      ],
      text: d['english-short'] ?? d['english-long'] ?? d['icd10-code'],
    }));

  const text = textOf(input, r);
  const diagnosticReport: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    identifier: [
      { system: FhirSystems.diagnosticReport, value: input.orderId },
      { system: FhirSystems.fillerOrder, value: input.fillerOrderNumber },
    ],
    ...(input.basedOn ? { basedOn: [input.basedOn] } : {}),
    status,
    category: [
      { coding: [{ system: FhirSystems.v20074, code: 'LAB', display: 'Laboratory' }] },
      { coding: [{ system: FhirSystems.v20074, code: 'HM', display: 'Hematology' }] },
    ],
    code: { coding: [{ system: FhirSystems.loinc, ...Loinc.smearPanel }], text: 'Peripheral blood smear morphology' },
    ...(subject ? { subject } : {}),
    effectiveDateTime: effective,
    issued,
    performer: [{ display: input.performerDisplay ?? 'Hemato.AI' }],
    ...(input.specimens?.length ? { specimen: input.specimens.map((s) => ({ reference: s })) } : {}),
    result: observations.map((o) => ({ reference: fullUrls.get(o)! })),
    ...(r.pathology_report ? { conclusion: r.pathology_report } : {}),
    ...(conclusionCode.length ? { conclusionCode } : {}),
    presentedForm: [
      {
        contentType: 'text/plain; charset=utf-8',
        language: 'en',
        data: Buffer.from(text, 'utf8').toString('base64'),
        title: `Hemato.AI report ${r.pbs_study_id} v${input.version}`,
        creation: issued,
      },
      {
        contentType: 'application/pdf',
        language: 'en',
        data: textToPdf(text, `Hemato.AI report ${r.pbs_study_id} v${input.version}`).toString('base64'),
        title: `Hemato.AI report ${r.pbs_study_id} v${input.version} (PDF)`,
        creation: issued,
      },
    ],
  };
  const drUrl = url('diagnostic-report');
  fullUrls.set(diagnosticReport, drUrl);

  const provenance: Provenance = {
    resourceType: 'Provenance',
    meta: { tag: [{ system: FhirSystems.reportTag, code: `${input.orderId}-v${input.version}` }] },
    // What this version retracts is its doing too: named beside what it reports.
    target: [drUrl, ...observations.map((o) => fullUrls.get(o)!), ...retracted.map((o) => fullUrls.get(o)!)].map(
      (reference) => ({ reference }),
    ),
    recorded: issued,
    activity: {
      coding: [
        input.version > 1
          ? { system: FhirSystems.dataOperation, code: 'UPDATE', display: 'revise' }
          : { system: FhirSystems.dataOperation, code: 'CREATE', display: 'create' },
      ],
    },
    agent: [
      {
        type: { coding: [{ system: FhirSystems.provenanceParticipant, code: 'assembler', display: 'Assembler' }] },
        who: { reference: deviceUrl, display: 'Hemato.AI' },
      },
    ],
    entity: [
      {
        role: 'source',
        what: {
          identifier: { system: FhirSystems.hematoReport, value: `${r.pbs_study_id}/v${input.version}` },
          display: `Hemato.AI report ${r.pbs_study_id} version ${input.version}`,
        },
      },
    ],
  };
  fullUrls.set(provenance, url(`provenance/v${input.version}`));
  return { diagnosticReport, observations, retracted, device, provenance, fullUrls };
}

function identifierQuery(r: { identifier?: Array<{ system?: string; value?: string }> }): string {
  const id = r.identifier![0]!;
  return `identifier=${encodeURIComponent(`${id.system}|${id.value}`)}`;
}

/**
 * One transaction Bundle: conditional update (`PUT Type?identifier=...`) for the DiagnosticReport,
 * its Observations (and those it retracts) and the Device; conditional create (`If-None-Exist: _tag=...`) for the Provenance
 * of this report version. Sending it twice leaves one of each.
 */
export function buildReportTransaction(res: ReportResources): Bundle {
  const entry = (r: Resource, request: BundleEntry['request']): BundleEntry => ({
    fullUrl: res.fullUrls.get(r),
    resource: r,
    request,
  });
  const put = (r: Device | Observation | DiagnosticReport): BundleEntry =>
    entry(r, { method: 'PUT', url: `${r.resourceType}?${identifierQuery(r)}` });
  const tag = res.provenance.meta!.tag![0]!;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      put(res.device),
      ...res.observations.map(put),
      ...res.retracted.map(put),
      put(res.diagnosticReport),
      entry(res.provenance, {
        method: 'POST',
        url: 'Provenance',
        ifNoneExist: `_tag=${encodeURIComponent(`${tag.system}|${tag.code}`)}`,
      }),
    ],
  };
}

/**
 * The DiagnosticReport as our read API serves it: Observations and Device contained, so a pulling
 * EHR gets everything in one resource.
 */
export function buildContainedDiagnosticReport(res: ReportResources, id: string, versionId: string): DiagnosticReport {
  const localId = new Map<string, string>();
  res.observations.forEach((o, i) => localId.set(res.fullUrls.get(o)!, `obs${i + 1}`));
  localId.set(res.fullUrls.get(res.device)!, 'device');
  const relink = <T extends Reference<any> | undefined>(ref: T): T =>
    ref?.reference && localId.has(ref.reference) ? ({ ...ref, reference: `#${localId.get(ref.reference)}` } as T) : ref;
  const contained: Resource[] = [
    { ...res.device, id: 'device' },
    ...res.observations.map((o) => ({ ...o, id: localId.get(res.fullUrls.get(o)!)!, device: relink(o.device) })),
  ];
  return {
    ...res.diagnosticReport,
    id,
    meta: { versionId },
    contained,
    result: res.diagnosticReport.result?.map((r) => relink(r)),
  };
}
