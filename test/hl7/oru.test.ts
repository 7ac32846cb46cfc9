import { execFileSync } from 'node:child_process';
import { Message } from 'node-hl7-client';
import type { ReportResults } from '@hemato/hemato-client';
import {
  buildOrderResponse,
  buildOruR01,
  hl7Timestamp,
  pidFromIdentity,
  readHeader,
  unescapeHl7,
  HEMATO_NOTE,
  type OruInput,
} from '@hemato/hl7';

const REPORT: ReportResults = {
  pbs_study_id: '4bb7fe9e-b608-4d68-adbe-8655c991f494',
  file_ids: ['sha224-i-db367ccd89fc39aa6ff9fff0cd9b11e6b5b6a41cff4bbb232bee7c93'],
  feature_statistics: {
    'rbc-density': { value: '4.52', unit: '10*12/L' },
    'platelet-density': { value: 231, unit: '10*9/L' },
    'blast-density': { value: 'n/a', unit: '%' },
  },
  morphological_findings: {
    'ring trophozoite': { count: '12', heat_map: [{ center: [435, 345], radius: 35 }] },
    schistocyte: { count: 3 },
  },
  diagnostic_report: {
    differential_diagnosis: [
      {
        score: 7,
        confidence: '0.95',
        'icd10-code': 'B50',
        'english-long': 'Malaria Infection with Plasmodium Falciparum',
      },
      { score: '2.5', confidence: 0.4, 'icd10-code': 'D59.4', 'english-short': 'Non-autoimmune haemolytic anaemia' },
    ],
  },
  pathology_report: 'Ring forms | 2% parasitaemia ^ see note & follow-up ~ 48h.\nSecond line with a \\ backslash.',
};

// Debian's python3-hl7 lives in the system interpreter (not a pyenv/venv one that may come first on PATH).
const PYTHON = process.env.HL7_PYTHON ?? '/usr/bin/python3';

const PID = 'PID|1||MRN0001^^^GENHOSP^MR~99887766^^^NATID^NI||TESTPATIENT^ALICE^Q||19700102|F';

function build(version = 1, alternateTest: { system: string; code: string; display: string } | null = null) {
  return buildOruR01({
    report: REPORT,
    reportVersion: version,
    us: { application: 'HEMATO-BRIDGE', facility: 'HEMATO' },
    to: { application: 'LIS', facility: 'GENHOSP' },
    order: {
      placerOrderNumber: 'PL-1',
      fillerOrderNumber: 'HB260101000001',
      test: { system: 'LN', code: '34994-4', display: 'Peripheral blood smear' },
      collectionTime: '2026-01-01T11:30:00',
      alternateTest,
    },
    hl7Pid: PID,
    controlId: 'ORU-CTRL-1',
  });
}

/** buildOruR01 with this file's defaults (order PL-1 / HB1, LOINC 34994-4, PID above); any part replaced. */
function oruWith(over: Omit<Partial<OruInput>, 'order'> & { order?: Partial<OruInput['order']> } = {}) {
  const { order, ...rest } = over;
  return buildOruR01({
    report: REPORT,
    reportVersion: 1,
    us: { application: 'HEMATO-BRIDGE', facility: 'HEMATO' },
    to: { application: 'LIS', facility: 'GENHOSP' },
    hl7Pid: PID,
    ...rest,
    order: {
      placerOrderNumber: 'PL-1',
      fillerOrderNumber: 'HB1',
      test: { system: 'LN', code: '34994-4', display: null },
      ...order,
    },
  });
}

describe('ORU^R01 builder', () => {
  it('builds a v2.5.1 ORU that node-hl7-client parses back with the expected segments and OBX values', () => {
    const { message, controlId } = build();
    expect(controlId).toBe('ORU-CTRL-1');
    const m = new Message({ text: message });
    expect(m.get('MSH.3').toString()).toBe('HEMATO-BRIDGE');
    expect(m.get('MSH.5').toString()).toBe('LIS');
    expect(m.get('MSH.6').toString()).toBe('GENHOSP');
    expect(m.get('MSH.9').toRaw()).toBe('ORU^R01^ORU_R01');
    expect(m.get('MSH.10').toString()).toBe('ORU-CTRL-1');
    expect(m.get('MSH.12').toString()).toBe('2.5.1');
    expect(message.split('\r')[1]).toBe(PID);
    expect(m.get('PID.3.1').toString()).toBe('MRN0001');
    expect(m.get('ORC.2').toString()).toBe('PL-1');
    expect(m.get('ORC.3').toString()).toBe('HB260101000001');
    expect(m.get('OBR.2').toString()).toBe('PL-1');
    expect(m.get('OBR.3').toString()).toBe('HB260101000001');
    expect(m.get('OBR.4.1').toString()).toBe('34994-4');
    expect(m.get('OBR.25').toString()).toBe('F');
    // OBR-7 as the order gave it: a time without an offset gets none (this machine's zone is not the sender's).
    expect(m.get('OBR.7').toString()).toBe('20260101113000');
    expect(m.get('NTE.3').toString()).toBe(HEMATO_NOTE);
    const obx = m
      .toArray()
      .filter((s) => s.name === 'OBX')
      .map((s) => ({
        type: s.get('2').toString(),
        id: s.get('3.1').toString(),
        sub: s.get('4').toString(),
        value: s.get('5').toRaw(),
        unit: s.get('6.1').toString(),
        status: s.get('11').toString(),
      }));
    expect(obx.slice(0, 5)).toEqual([
      { type: 'NM', id: 'FS-rbc-density', sub: '', value: '4.52', unit: '10*12/L', status: 'F' },
      { type: 'NM', id: 'FS-platelet-density', sub: '', value: '231', unit: '10*9/L', status: 'F' },
      { type: 'ST', id: 'FS-blast-density', sub: '', value: 'n/a', unit: '%', status: 'F' },
      { type: 'NM', id: 'MF-ring trophozoite', sub: '', value: '12', unit: '{count}', status: 'F' },
      { type: 'NM', id: 'MF-schistocyte', sub: '', value: '3', unit: '{count}', status: 'F' },
    ]);
    expect(obx.slice(5, 11)).toEqual([
      {
        type: 'CWE',
        id: 'DDX',
        sub: '1',
        value: 'B50^Malaria Infection with Plasmodium Falciparum^I10',
        unit: '',
        status: 'F',
      },
      { type: 'NM', id: 'DDX-SCORE', sub: '1', value: '7', unit: '', status: 'F' },
      { type: 'NM', id: 'DDX-CONF', sub: '1', value: '0.95', unit: '', status: 'F' },
      { type: 'CWE', id: 'DDX', sub: '2', value: 'D59.4^Non-autoimmune haemolytic anaemia^I10', unit: '', status: 'F' },
      { type: 'NM', id: 'DDX-SCORE', sub: '2', value: '2.5', unit: '', status: 'F' },
      { type: 'NM', id: 'DDX-CONF', sub: '2', value: '0.4', unit: '', status: 'F' },
    ]);
    expect(obx.slice(11).map((o) => [o.type, o.id, o.value])).toEqual([
      ['TX', 'PATH-REPORT', 'Ring forms \\F\\ 2% parasitaemia \\S\\ see note \\T\\ follow-up \\R\\ 48h.'],
      ['TX', 'PATH-REPORT', 'Second line with a \\E\\ backslash.'],
    ]);
    // Unescaped, the text is the report's.
    const tx = m.toArray().filter((s) => s.name === 'OBX' && s.get('2').toString() === 'TX');
    expect(tx.map((s) => s.get('5').toString())).toEqual(REPORT.pathology_report.split('\n'));
  });

  it("echoes the order's OBR-4 alternate coding (4.4-4.6) beside the code it was placed with", () => {
    const plain = new Message({ text: build().message });
    expect(plain.get('OBR.4.4').toString()).toBe('');
    const { message } = build(1, { system: 'L', code: 'SMEAR', display: 'Blood smear' });
    const m = new Message({ text: message });
    expect(m.get('OBR.4.1').toString()).toBe('34994-4');
    expect([m.get('OBR.4.4').toString(), m.get('OBR.4.5').toString(), m.get('OBR.4.6').toString()]).toEqual([
      'SMEAR',
      'Blood smear',
      'L',
    ]);
  });

  it('codes OBX-6 as UCUM only when the unit has a known UCUM form; any other unit goes as text alone', () => {
    const { message } = oruWith({
      report: {
        ...REPORT,
        feature_statistics: {
          wbc: { value: 6.1, unit: '10^9/L' },
          density: { value: 410, unit: 'cells/megapixel' },
          odd: { value: 2, unit: 'widgets per field' },
        },
        morphological_findings: {},
      },
    });
    const units = new Message({ text: message })
      .toArray()
      .filter((s) => s.name === 'OBX' && s.get('3.1').toString().startsWith('FS-'))
      .map((s) => [s.get('6.1').toString(), s.get('6.2').toString(), s.get('6.3').toString()]);
    expect(units).toEqual([
      ['10*9/L', '10^9/L', 'UCUM'],
      ['{cells}/{megapixel}', 'cells/megapixel', 'UCUM'],
      ['', 'widgets per field', ''],
    ]);
  });

  it('sends a blank line of the pathology report as one space, never an empty OBX-5 with status F', () => {
    const { message } = oruWith({
      report: { ...REPORT, pathology_report: 'First paragraph.\n\nSecond paragraph.' },
    });
    const lines = message
      .split('\r')
      .filter((seg) => seg.includes('|PATH-REPORT^'))
      .map((seg) => seg.split('|')[5]);
    expect(lines).toEqual(['First paragraph.', ' ', 'Second paragraph.']);
  });

  it('builds the ORU of a pathology text of several MB and half a million lines: each line its own TX OBX, its text whole', () => {
    // A long report (4 MB of prose) and a long list of short lines (CRLF, CR and LF, blank ones): one OBX per
    // line. Each OBX made through node-hl7-client's tree cost ~100 µs and kilobytes of heap: ~10 s for 5 MB
    // of prose, and a megabyte of short lines ran for minutes or out of memory.
    const prose = Array.from(
      { length: 40_000 },
      (_, i) => `${i} Anisocytosis | poikilocytosis ^ ovalocytes & target cells ~ 2+ \\ Größe ≥ 5 µm, see ${i}.`,
    );
    const short = Array.from({ length: 500_000 }, (_, i) => (i % 7 === 0 ? '' : `L${i % 10}`));
    const breaks = ['\n', '\r\n', '\r'];
    // (A blank line ends in CRLF: a bare LF after a CR-ended line would make one CRLF of the two.)
    const text = [...prose, ...short].map((l, i) => l + (l === '' ? '\r\n' : breaks[i % 3])).join('');
    expect(Buffer.byteLength(text)).toBeGreaterThan(5_000_000);
    const { message } = oruWith({ report: { ...REPORT, pathology_report: text } });
    const obx = message.split('\r').filter((seg) => seg.startsWith('OBX|'));
    const path = obx.filter((seg) => seg.includes('|PATH-REPORT^'));
    // The text's last line break ends no line of its own: an empty last line, sent as one space.
    expect(path).toHaveLength(prose.length + short.length + 1);
    const unescaped = path.map((seg) => unescapeHl7(seg.split('|')[5]!));
    expect(unescaped.slice(0, prose.length)).toEqual(prose);
    expect(unescaped.slice(prose.length, -1)).toEqual(short.map((l) => (l === '' ? ' ' : l)));
    // OBX-1 counts every OBX, the statistics, findings and diagnoses before the report included.
    expect(obx.map((seg) => seg.split('|')[1])).toEqual(obx.map((_, i) => String(i + 1)));
  });

  it('reads back every delimiter, escape-like text and non-ASCII character in names and report lines (python3-hl7)', () => {
    const nasty = 'a|b^c~d\\e&f \\F\\ \\X41\\ \\.br\\ é≥µ 🩸';
    const { message } = oruWith({
      report: {
        ...REPORT,
        feature_statistics: { [nasty]: { value: nasty, unit: 'x^y|z' } },
        morphological_findings: { [nasty]: { count: 1 } },
        diagnostic_report: {
          differential_diagnosis: [{ score: 1, confidence: 0.5, 'icd10-code': 'D50.0', 'english-long': nasty }],
        },
        pathology_report: `${nasty}\r\n\t tabbed\n\n${'long '.repeat(12_000)}`,
      },
    });
    const script = `
import sys, json, hl7
m = hl7.parse(sys.stdin.buffer.read().decode("utf-8"))
out = []
for s in m.segments("OBX"):
    c = lambda f: [m.unescape(x) for x in str(f).split("^")]
    v, u = c(s[5]), c(s[6])
    out.append([str(s[2]), c(s[3])[1], v[0], v[1] if len(v) > 1 else None, u[1] if len(u) > 1 else None])
print(json.dumps(out))
`;
    const out = JSON.parse(
      execFileSync(PYTHON, ['-c', script], { input: Buffer.from(message, 'utf8'), encoding: 'utf8' }),
    ) as Array<[string, string, string, string | null, string | null]>;
    expect(out[0]).toEqual(['ST', nasty, nasty, null, 'x^y|z']);
    expect(out[1]).toEqual(['NM', `${nasty} count`, '1', null, '{count}']);
    expect(out[2]).toEqual(['CWE', 'Differential diagnosis', 'D50.0', nasty, null]);
    expect(out.filter((o) => o[1] === 'Pathology report').map((o) => o[2])).toEqual([
      nasty,
      '\t tabbed',
      ' ',
      `${'long '.repeat(12_000)}`,
    ]);
  });

  it('sends a report line longer than a TX value may be (65,536 characters) as several TX lines that join back to it', () => {
    // Words (broken after a space) and a run of delimiters without a space (each escaped to three characters).
    const words = Array.from({ length: 30_000 }, (_, i) => `word${i}`).join(' ');
    const delimiters = '&|'.repeat(40_000) + '🩸'.repeat(10_000);
    for (const long of [words, delimiters]) {
      const { message } = oruWith({ report: { ...REPORT, pathology_report: `${long}\nend` } });
      const values = message
        .split('\r')
        .filter((seg) => seg.includes('|PATH-REPORT^'))
        .map((seg) => seg.split('|')[5]!);
      expect(values.length).toBeGreaterThan(2);
      for (const v of values) expect(v.length).toBeLessThanOrEqual(65_536);
      const text = values.map((v) => unescapeHl7(v));
      expect(text.at(-1)).toBe('end');
      expect(text.slice(0, -1).join('')).toBe(long);
      expect(text.slice(0, -1).every((t) => !/^[\udc00-\udfff]|[\ud800-\udbff]$/.test(t))).toBe(true);
      if (long === words) expect(text.slice(0, -2).every((t) => t.endsWith(' '))).toBe(true);
    }
  });

  it('marks a revised report (version > 1) as corrected: OBR-25 and OBX-11 C', () => {
    const m = new Message({ text: build(2).message });
    expect(m.get('OBR.25').toString()).toBe('C');
    const statuses = m
      .toArray()
      .filter((s) => s.name === 'OBX')
      .map((s) => s.get('11').toString());
    expect(new Set(statuses)).toEqual(new Set(['C']));
  });

  it('parses back with Python hl7 (python3-hl7), independently, with the same OBX values', () => {
    const { message } = build();
    const script = `
import sys, json, hl7
m = hl7.parse(sys.stdin.read())
out = {"type": str(m.segment("MSH")[9]), "control": str(m.segment("MSH")[10]), "pid3": str(m.segment("PID")[3]).split("~")[0].split("^")[0],
       "obr25": str(m.segment("OBR")[25]), "filler": str(m.segment("OBR")[3]), "obx": []}
for s in m.segments("OBX"):
    out["obx"].append([str(s[2]), str(s[3]).split("^")[0], str(s[4]), m.unescape(str(s[5])), str(s[6]).split("^")[0]])
print(json.dumps(out))
`;
    const out = JSON.parse(execFileSync(PYTHON, ['-c', script], { input: message, encoding: 'utf8' })) as {
      type: string;
      control: string;
      pid3: string;
      obr25: string;
      filler: string;
      obx: string[][];
    };
    expect(out.type).toBe('ORU^R01^ORU_R01');
    expect(out.control).toBe('ORU-CTRL-1');
    expect(out.pid3).toBe('MRN0001');
    expect(out.obr25).toBe('F');
    expect(out.filler).toBe('HB260101000001^HEMATO-BRIDGE');
    expect(out.obx.find((o) => o[1] === 'FS-rbc-density')).toEqual(['NM', 'FS-rbc-density', '', '4.52', '10*12/L']);
    expect(out.obx.find((o) => o[1] === 'MF-ring trophozoite')).toEqual([
      'NM',
      'MF-ring trophozoite',
      '',
      '12',
      '{count}',
    ]);
    expect(out.obx.filter((o) => o[1] === 'DDX').map((o) => o[3])).toEqual([
      'B50^Malaria Infection with Plasmodium Falciparum^I10',
      'D59.4^Non-autoimmune haemolytic anaemia^I10',
    ]);
    expect(out.obx.filter((o) => o[1] === 'DDX-CONF').map((o) => o[3])).toEqual(['0.95', '0.4']);
    expect(out.obx.filter((o) => o[1] === 'PATH-REPORT').map((o) => o[3])).toEqual(REPORT.pathology_report.split('\n'));
  });

  it('writes every NM value as an HL7 NM (sign, digits, decimal point): never in exponent notation', () => {
    const { message } = oruWith({
      report: {
        ...REPORT,
        // Very small or large values, as Hemato.AI's JSON (or PostgreSQL's jsonb) hands them over.
        feature_statistics: {
          'parasite-density': { value: 1.2e-7, unit: '/um2' },
          'cell-count': { value: 1e21, unit: '{cells}' },
          'blast-fraction': { value: '3.5E-08', unit: '1' },
          'rbc-density': { value: -4.52, unit: '10*12/L' },
        },
        morphological_findings: {},
        diagnostic_report: { differential_diagnosis: [{ score: 2e-7, confidence: 0.9, 'icd10-code': 'B50' }] },
        pathology_report: '',
      },
    });
    const obx = new Message({ text: message })
      .toArray()
      .filter((s) => s.name === 'OBX')
      .map((s) => [s.get('2').toString(), s.get('3.1').toString(), s.get('5').toString()]);
    expect(obx.filter((o) => o[1] !== 'DDX')).toEqual([
      ['NM', 'FS-parasite-density', '0.00000012'],
      ['NM', 'FS-cell-count', '1000000000000000000000'],
      ['NM', 'FS-blast-fraction', '0.000000035'],
      ['NM', 'FS-rbc-density', '-4.52'],
      ['NM', 'DDX-SCORE', '0.0000002'],
      ['NM', 'DDX-CONF', '0.9'],
    ]);
    // HL7 v2.5.1 2A.3.47: NM is an optional sign, digits and an optional decimal point, nothing else.
    for (const o of obx.filter((x) => x[0] === 'NM')) expect(o[2]).toMatch(/^[-+]?(\d+\.?\d*|\.\d+)$/);
  });

  it('names the order by the same filler order number (EI with our namespace) as the ORR^O02 gave the placer', () => {
    // Enhanced mode: the placer learnt our filler number from ORR^O02 ORC-3 and files the result under it.
    const orr = new Message({
      text: buildOrderResponse({
        header: readHeader('MSH|^~\\&|LIS|GENHOSP|HB|HB|20260101||ORM^O01^ORM_O01|C1|P|2.5.1|||AL|AL')!,
        code: 'AA',
        us: { application: 'HEMATO-BRIDGE', facility: 'HEMATO' },
        lines: [
          {
            control: 'OK',
            placerOrderNumber: 'PL-1',
            fillerOrderNumber: 'HB260101000001',
            test: { system: 'LN', code: '34994-4', display: null },
          },
        ],
      }),
    });
    const filler = orr.get('ORC.3').toRaw();
    expect(filler).toBe('HB260101000001^HEMATO-BRIDGE');
    const oru = new Message({ text: build().message });
    expect(oru.get('ORC.3').toRaw()).toBe(filler);
    expect(oru.get('OBR.3').toRaw()).toBe(filler);
  });

  it('keeps line breaks in report texts and order values inside their field: no segment is split', () => {
    const { message } = oruWith({
      report: {
        ...REPORT,
        feature_statistics: { 'cell shape': { value: 'oval\nirregular', unit: '' } },
        morphological_findings: { 'target\r\ncell': { count: 3 } },
        diagnostic_report: {
          differential_diagnosis: [
            { score: 1, confidence: 0.5, 'icd10-code': 'D50', 'english-long': 'Iron deficiency\nanaemia' },
          ],
        },
        pathology_report: 'One line.',
      },
      // The placer's OBR-4.2 as stored: its `\.br\` read as a line break.
      order: {
        test: { system: 'LN', code: '34994-4', display: 'Peripheral\nsmear' },
      },
    });
    expect(message).not.toMatch(/\n/);
    expect(message.split('\r').map((s) => s.slice(0, 4))).toEqual([
      'MSH|',
      'PID|',
      'ORC|',
      'OBR|',
      'NTE|',
      'OBX|',
      'OBX|',
      'OBX|',
      'OBX|',
      'OBX|',
      'OBX|',
    ]);
    // Read back independently (python3-hl7): each value whole, in its own OBX.
    const script = `
import sys, json, hl7
m = hl7.parse(sys.stdin.read())
print(json.dumps({"obr4": str(m.segment("OBR")[4]), "obx": [[str(s[2]), str(s[3]), str(s[5]), str(s[11])] for s in m.segments("OBX")]}))
`;
    const out = JSON.parse(execFileSync(PYTHON, ['-c', script], { input: message, encoding: 'utf8' })) as {
      obr4: string;
      obx: string[][];
    };
    expect(out.obr4).toBe('34994-4^Peripheral smear^LN');
    expect(out.obx.map((o) => o[3])).toEqual(['F', 'F', 'F', 'F', 'F', 'F']);
    expect(out.obx[0]!.slice(0, 3)).toEqual(['ST', 'FS-cell shape^cell shape^99HAI', 'oval irregular']);
    expect(out.obx[1]![1]).toBe('MF-target cell^target cell count^99HAI');
    expect(out.obx[2]![2]).toBe('D50^Iron deficiency anaemia^I10');
  });

  it('dates each observation at specimen collection (OBX-14, as OBR-7) and its analysis at the report (OBX-19)', () => {
    const reportedAt = new Date('2026-01-02T09:15:00Z');
    const { message } = oruWith({
      order: {
        collectionTime: '2026-01-01T11:30:00+01:00',
      },
      reportedAt,
    });
    const m = new Message({ text: message });
    expect(m.get('OBR.7').toString()).toBe('20260101113000+0100');
    expect(m.get('OBR.22').toString()).toBe(hl7Timestamp(reportedAt));
    const obx = m.toArray().filter((s) => s.name === 'OBX');
    expect(obx.length).toBeGreaterThan(5);
    // HL7 v2.5.1 7.4.2.14: for specimen-based results the physiologically relevant time is the collection.
    expect(new Set(obx.map((s) => s.get('14').toString()))).toEqual(new Set(['20260101113000+0100']));
    expect(new Set(obx.map((s) => s.get('19').toString()))).toEqual(new Set([hl7Timestamp(reportedAt)]));
  });

  it('builds a PID from stored identity fields when the verbatim one is missing, escaping delimiters', () => {
    const pid = pidFromIdentity({
      primary: { authority: 'GENHOSP', value: 'A|1' },
      identifiers: [{ authority: 'GENHOSP', value: 'A|1', type: 'MR' }],
      name: { family: "O'NEIL^X", given: ['ANN'] },
      birthDate: '1970-01-02',
      sex: 'F',
    });
    expect(pid).toBe("PID|1||A\\F\\1^^^GENHOSP^MR||O'NEIL\\S\\X^ANN||19700102|F");
  });
});
