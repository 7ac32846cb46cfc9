/**
 * A plain-text report as a small PDF 1.4 (Helvetica, A4, wrapped lines, as many pages as needed),
 * written by hand so no PDF library is needed. Characters outside Latin-1 become `?`.
 */
export function textToPdf(text: string, title = 'Report'): Buffer {
  const lines = wrap(text, 95);
  const perPage = 62;
  const pages: string[][] = [];
  for (let i = 0; i < lines.length; i += perPage) pages.push(lines.slice(i, i + perPage));
  if (pages.length === 0) pages.push(['']);

  // Object numbers: 1 catalog, 2 pages, 3 font, 4 info, then per page: page object + content stream.
  const objects: string[] = [];
  const pageIds = pages.map((_, i) => 5 + i * 2);
  objects[1] = `<< /Type /Catalog /Pages 2 0 R >>`;
  objects[2] = `<< /Type /Pages /Kids [${pageIds.map((id) => `${id} 0 R`).join(' ')}] /Count ${pages.length} >>`;
  objects[3] = `<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>`;
  objects[4] = `<< /Title (${escape(title)}) /Producer (hemato-bridge) >>`;
  pages.forEach((pageLines, i) => {
    const body = [
      'BT',
      '/F1 10 Tf',
      '12 TL',
      '50 800 Td',
      ...pageLines.map((l, j) => (j === 0 ? `(${escape(l)}) Tj` : `T* (${escape(l)}) Tj`)),
      'ET',
    ].join('\n');
    const len = Buffer.byteLength(body, 'latin1');
    objects[pageIds[i]!] =
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents ${pageIds[i]! + 1} 0 R >>`;
    objects[pageIds[i]! + 1] = `<< /Length ${len} >>\nstream\n${body}\nendstream`;
  });

  let out = '%PDF-1.4\n%\xE2\xE3\xCF\xD3\n';
  const offsets: number[] = [];
  for (let n = 1; n < objects.length; n++) {
    offsets[n] = Buffer.byteLength(out, 'latin1');
    out += `${n} 0 obj\n${objects[n]}\nendobj\n`;
  }
  const xref = Buffer.byteLength(out, 'latin1');
  out += `xref\n0 ${objects.length}\n0000000000 65535 f \n`;
  for (let n = 1; n < objects.length; n++) out += `${String(offsets[n]).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length} /Root 1 0 R /Info 4 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

function escape(s: string): string {
  return s
    .replace(/[^\x20-\x7E\xA0-\xFF]/g, '?')
    .replace(/\\/g, '\\\\')
    .replace(/\(/g, '\\(')
    .replace(/\)/g, '\\)');
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const raw of text.replace(/\t/g, '  ').split(/\r?\n/)) {
    let line = raw;
    while (line.length > width) {
      const cut = line.lastIndexOf(' ', width);
      const at = cut > width / 2 ? cut : width;
      out.push(line.slice(0, at));
      line = line.slice(at).replace(/^ /, '');
    }
    out.push(line);
  }
  return out;
}
