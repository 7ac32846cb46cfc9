import { buildReportResources } from './diagnostic-report.builder';

/** A report stored as Hemato.AI sent it, before reports were checked on arrival: the resources are still valid. */
describe('FHIR results from a malformed stored report', () => {
  it('leaves out what is malformed instead of failing: no empty code, no NUL, ICD-10 codes only', () => {
    const results = {
      pbs_study_id: 's1',
      file_ids: [],
      feature_statistics: { wbc: { value: '5.1', unit: 5 }, gone: null, '': { value: 1, unit: 'g' } },
      morphological_findings: { ring: { count: '1' }, none: null },
      diagnostic_report: {
        differential_diagnosis: [
          null,
          { score: 1, confidence: 0.5, 'icd10-code': 50 },
          { score: 1, confidence: 0.5, 'icd10-code': 'x|y' },
          { score: 7, confidence: '0.95', 'icd10-code': 'B50' },
        ],
      },
      pathology_report: 'a\u0000b',
    };
    const res = buildReportResources({
      orderId: 'o1',
      fillerOrderNumber: 'F1',
      version: 1,
      results: results as never,
      issued: new Date('2026-01-01T00:00:00Z'),
      effective: new Date('2026-01-01T00:00:00Z'),
    });
    expect(res.observations.map((o) => o.code.coding![0]!.code)).toEqual(['wbc', 'ring', '18314-5']);
    expect(res.observations[0]!.valueQuantity).toEqual({ value: 5.1, unit: '5' });
    expect(res.diagnosticReport.conclusionCode!.map((c) => c.coding![0]!.code)).toEqual(['B50']);
    expect(res.diagnosticReport.conclusion).toBe('ab');
    expect(JSON.stringify(res)).not.toMatch(/\\u0000/);
  });
});
