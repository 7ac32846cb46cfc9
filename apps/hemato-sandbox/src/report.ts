import type { DifferentialDiagnosis, HeatMapSpot, MorphologicalFinding } from '@hemato/hemato-client';
import type { StoredFile, StoredReport } from './store';

export const SANDBOX_NOTICE =
  'SANDBOX REPORT: produced by the hemato-bridge Hemato.AI sandbox by counting coloured blobs in the images. ' +
  'It is NOT a diagnosis and must not be used for patient care.';

const fmt = (n: number, digits = 2) => n.toFixed(digits);

/**
 * Builds a report from the per-image analyses of a study's files. Values are strings, as in the
 * reference's example (`"count": "1"`, `"confidence": "0.95"`), so clients must parse them.
 */
export function buildReport(studyId: string, files: StoredFile[], version: number, note?: string): StoredReport {
  let rbc = 0;
  let wbc = 0;
  let blasts = 0;
  let platelets = 0;
  let pixels = 0;
  let images = 0;
  const spots: HeatMapSpot[] = [];
  for (const f of files) {
    for (const img of f.images) {
      images++;
      rbc += img.rbc;
      wbc += img.wbc;
      blasts += img.blasts;
      platelets += img.platelets;
      pixels += img.width * img.height;
      for (const p of img.parasites) spots.push({ center: p.center, radius: p.radius, file_id: f.file_id });
    }
  }
  const mpx = pixels / 1e6;
  const density = (n: number) => ({ value: fmt(mpx > 0 ? n / mpx : 0), unit: 'cells/megapixel' });
  const parasitemia = rbc > 0 ? (100 * spots.length) / rbc : 0;

  const findings: Record<string, MorphologicalFinding> = {};
  const differential: DifferentialDiagnosis[] = [];
  if (spots.length > 0) {
    findings['ring trophozoite'] = { count: String(spots.length), heat_map: spots };
    differential.push({
      score: 7,
      confidence: fmt(Math.min(0.99, 0.6 + 0.05 * spots.length)),
      'clinical-significance': 'D',
      'icd10-code': 'B50',
      'english-long': 'Malaria Infection with Plasmodium Falciparum',
      'english-short': 'Malaria',
    });
  }
  if (blasts > 0) findings['blast'] = { count: String(blasts) };

  const seen =
    `Inspection of ${images} image${images === 1 ? '' : 's'} (${fmt(mpx)} megapixels) counted about ${rbc} red cells, ` +
    `${wbc} white cells and ${platelets} platelets.`;
  const parasitesText =
    spots.length > 0
      ? ` Ring-form parasites were seen in ${spots.length} red cell${spots.length === 1 ? '' : 's'} (parasitemia about ${fmt(parasitemia)}%), a pattern seen in Plasmodium falciparum infection.`
      : ' No ring-form parasites were seen.';
  const revision = version > 1 ? ` Revision ${version}${note ? `: ${note}` : ''}.` : '';

  return {
    pbs_study_id: studyId,
    file_ids: files.map((f) => f.file_id),
    version,
    created_at: new Date().toISOString(),
    feature_statistics: {
      'rbc-density': density(rbc),
      'wbc-density': density(wbc),
      'platelet-density': density(platelets),
      'blast-density': density(blasts),
      parasitemia: { value: fmt(parasitemia), unit: '%' },
    },
    morphological_findings: findings,
    diagnostic_report: { differential_diagnosis: differential },
    pathology_report: `${SANDBOX_NOTICE} No demographics or past medical history is available about the patient. ${seen}${parasitesText}${revision}`,
    sandbox_notice: SANDBOX_NOTICE,
  };
}
