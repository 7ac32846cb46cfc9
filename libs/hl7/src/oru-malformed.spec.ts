import { buildOruR01 } from './oru';

/** A report stored as Hemato.AI sent it, before reports were checked on arrival: the ORU is still well-formed. */
describe('ORU^R01 from a malformed stored report', () => {
  it('leaves out what is malformed instead of failing, and sends no NUL or broken segment', () => {
    const report = {
      pbs_study_id: 's1',
      file_ids: [],
      feature_statistics: { wbc: { value: '5.1', unit: 5 }, gone: null, obj: { value: { a: 1 }, unit: 'g' } },
      morphological_findings: { ring: { count: '1' }, none: null, neg: { count: -1 } },
      diagnostic_report: {
        differential_diagnosis: [
          null,
          { score: 1, confidence: 0.5 },
          { score: 7, confidence: '0.95', 'icd10-code': 'B50', 'english-long': 42 },
        ],
      },
      pathology_report: 'a\u0000b\rc',
    };
    const { message } = buildOruR01({
      report: report as never,
      reportVersion: 1,
      us: { application: 'HB', facility: 'LAB' },
      to: { application: 'EHR', facility: 'HOSP' },
      order: { placerOrderNumber: 'P1', fillerOrderNumber: 'F1', test: { system: null, code: 'PBS', display: null } },
      hl7Pid: 'PID|1||123^^^H^MR',
    });
    const segments = message.split('\r');
    for (const s of segments) expect(s).toMatch(/^(MSH|PID|ORC|OBR|NTE|OBX)\|/);
    expect(message).not.toContain('\u0000');
    const obx = segments.filter((s) => s.startsWith('OBX|')).map((s) => s.split('|'));
    expect(obx.map((f) => [f[3]!.split('^')[0], f[5]])).toEqual([
      ['FS-wbc', '5.1'],
      ['MF-ring', '1'],
      ['DDX', 'B50^^I10'],
      ['DDX-SCORE', '7'],
      ['DDX-CONF', '0.95'],
      ['PATH-REPORT', 'ab'],
      ['PATH-REPORT', 'c'],
    ]);
  });
});
