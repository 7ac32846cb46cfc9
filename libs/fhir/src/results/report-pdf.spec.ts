import { textToPdf } from './report-pdf';

describe('textToPdf', () => {
  it('writes a PDF whose xref offsets point at its objects, with every line of the text', () => {
    const text = Array.from({ length: 130 }, (_, i) => `Line ${i + 1} (with parentheses) and a back\\slash`).join('\n');
    const pdf = textToPdf(text, 'Hemato.AI report');
    const s = pdf.toString('latin1');
    expect(s.startsWith('%PDF-1.4\n')).toBe(true);
    expect(s.trimEnd().endsWith('%%EOF')).toBe(true);
    const startxref = Number(/startxref\n(\d+)\n%%EOF/.exec(s)![1]);
    expect(s.slice(startxref, startxref + 4)).toBe('xref');
    const entries = s
      .slice(startxref)
      .split('\n')
      .slice(3)
      .filter((l) => / 00000 n $/.test(l));
    expect(entries).toHaveLength(10); // catalog, pages, font, info + 3 pages x (page, content)
    entries.forEach((e, i) => {
      const at = Number(e.slice(0, 10));
      expect(s.slice(at, s.indexOf('\n', at))).toBe(`${i + 1} 0 obj`);
    });
    expect(s).toContain('/Count 3');
    expect(s).toContain('(Line 130 \\(with parentheses\\) and a back\\\\slash) Tj');
  });
});
