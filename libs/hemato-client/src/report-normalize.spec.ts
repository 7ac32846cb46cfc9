import { cleanText, normalizeReportResults, parseReport } from './results';

/** Hemato.AI's report is external input: each level checked entry by entry, the good ones kept. */
describe('a malformed report from Hemato.AI', () => {
  const good = {
    pbs_study_id: 's1',
    file_ids: ['f1', 7],
    feature_statistics: {
      'rbc-density': { value: '4.52', unit: '10^12/L' },
      'blast-density': { value: 'x', unit: 'y' },
    },
    morphological_findings: { 'ring trophozoite': { count: '1', heat_map: [{ center: [1, 2], radius: 3 }, 'junk'] } },
    diagnostic_report: {
      differential_diagnosis: [{ score: 7, confidence: '0.95', 'icd10-code': 'B50', 'english-long': 'Malaria' }],
    },
    pathology_report: 'Ring trophozoites.',
    unknown_field: { x: 1 },
  };

  it('keeps a well-formed report as it was (unknown fields aside) and leaves nothing out', () => {
    const { results, leftOut, usable } = normalizeReportResults(good);
    expect(leftOut).toEqual([]);
    expect(usable).toBe(true);
    expect(results).toEqual({
      pbs_study_id: 's1',
      file_ids: ['f1'],
      feature_statistics: good.feature_statistics,
      morphological_findings: { 'ring trophozoite': { count: '1', heat_map: [{ center: [1, 2], radius: 3 }] } },
      diagnostic_report: good.diagnostic_report,
      pathology_report: 'Ring trophozoites.',
    });
    // Idempotent: the builders apply it again.
    expect(normalizeReportResults(results).results).toEqual(results);
  });

  it('leaves out malformed statistics, findings and diagnoses one by one and says which', () => {
    const r = parseReport({
      ...good,
      feature_statistics: {
        ...good.feature_statistics,
        a: null,
        b: { value: { v: 1 }, unit: 'g' },
        c: { value: 'NaN', unit: 'g' },
        d: { value: 3, unit: 5 },
        '': { value: 1, unit: 'g' },
        'e\r\nf': { value: 1, unit: 'x\ry' },
      },
      morphological_findings: {
        m1: { count: -3 },
        m2: { count: 2.5 },
        m3: { count: 'many' },
        m4: null,
        m5: { count: 4 },
      },
      diagnostic_report: {
        differential_diagnosis: [
          null,
          { score: 1, confidence: 0.5 },
          { score: 1, confidence: 0.5, 'icd10-code': 'x|y^z' },
          { score: 1, confidence: 7, 'icd10-code': 'D50' },
          { score: 'high', confidence: 0.5, 'icd10-code': 'D50' },
          { score: -2, confidence: '0.2', 'icd10-code': ' d64.9 ', 'english-long': 42, 'english-short': 'Anaemia' },
        ],
      },
    } as never);
    expect(Object.keys(r.featureStatistics)).toEqual(['rbc-density', 'blast-density', 'd', 'e f']);
    expect(r.featureStatistics.d).toEqual({ value: 3, rawValue: 3, unit: '5' });
    expect(r.featureStatistics['e f']!.unit).toBe('x y');
    expect(Object.keys(r.morphologicalFindings)).toEqual(['m5']);
    expect(
      r.differentialDiagnosis.map((d) => [d.icd10Code, d.score, d.confidence, d.englishLong, d.englishShort]),
    ).toEqual([['D64.9', -2, 0.2, undefined, 'Anaemia']]);
    expect(r.leftOut).toEqual([
      'feature_statistics "a": no value',
      'feature_statistics "b": no value',
      'feature_statistics "c": no value',
      'feature_statistics: an entry without a name',
      'morphological_findings "m1": count not a whole number from 0',
      'morphological_findings "m2": count not a whole number from 0',
      'morphological_findings "m3": count not a whole number from 0',
      'morphological_findings "m4": count not a whole number from 0',
      'differential_diagnosis[0]: not an object',
      'differential_diagnosis[1]: no icd10-code',
      'differential_diagnosis[2]: "X|Y^Z" is not an ICD-10 code',
      'differential_diagnosis[3] D50: confidence not from 0 to 1',
      'differential_diagnosis[4] D50: no numeric score',
    ]);
    expect(r.usable).toBe(true);
    expect(r.raw).not.toHaveProperty('unknown_field');
  });

  it('cleans text of what cannot be stored or sent, keeping line breaks and HL7 characters', () => {
    expect(cleanText('a\u0000b\u0007c\td\r\ne\rf |^~\\& \\F\\')).toBe('abc\td\r\ne\rf |^~\\& \\F\\');
    expect(cleanText('lone \ud800 and \udc00, pair \ud83d\ude00')).toBe('lone \ufffd and \ufffd, pair \ud83d\ude00');
    const r = parseReport({ ...good, pathology_report: 'x\u0000y\ud800' } as never);
    expect(r.pathologyReport).toBe('xy\ufffd');
    expect(JSON.stringify(r.raw)).not.toMatch(/\\u0000|\\ud800/);
  });

  it('a report of the wrong shapes throughout has nothing usable', () => {
    const r = parseReport({
      pbs_study_id: 's1',
      feature_statistics: [1, 2],
      morphological_findings: 'none',
      diagnostic_report: { differential_diagnosis: { not: 'a list' } },
      pathology_report: { text: 1 },
    } as never);
    expect(r.usable).toBe(false);
    expect(r.leftOut).toEqual([
      'feature_statistics: not an object',
      'morphological_findings: not an object',
      'diagnostic_report.differential_diagnosis: not a list',
      'pathology_report: not text',
    ]);
    expect(parseReport({ pbs_study_id: 's1' } as never).usable).toBe(false);
  });

  it('names at most 20 entries left out and counts the rest', () => {
    const dd = Array.from({ length: 3000 }, () => ({ score: 1, confidence: 2, 'icd10-code': 'D50' }));
    const r = parseReport({ ...good, diagnostic_report: { differential_diagnosis: dd } } as never);
    expect(r.leftOut).toHaveLength(21);
    expect(r.leftOut[20]).toBe('and 2980 more');
  });
});
