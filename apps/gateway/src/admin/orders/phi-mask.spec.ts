import { elideBase64, forDisplay, MASK, maskFhir, maskHl7, maskInbound } from './phi-mask';

describe('masking the raw inbound message', () => {
  it('masks every filled field of PID and NK1 and leaves order segments as they were', () => {
    const raw = [
      'MSH|^~\\&|LIS|LAB|HB|H|20260101||ORM^O01|C1|P|2.5.1',
      'PID|1||MRN123^^^HOSP^MR||Doe^Jane||19700101|F|||1 Main St^^Town',
      'NK1|1|Doe^John|SPO',
      'ORC|NW|PL-1',
      'OBR|1|PL-1||34994-4^Smear^LN',
    ].join('\r');
    const masked = maskHl7(raw);
    expect(masked).not.toMatch(/Doe|Jane|MRN123|19700101|Main St|John/);
    const lines = masked.split('\r');
    expect(lines[1]).toBe(`PID|1||${MASK}||${MASK}||${MASK}|${MASK}|||${MASK}`);
    expect(lines[2]).toBe(`NK1|1|${MASK}|${MASK}`);
    expect(lines[0]).toBe(raw.split('\r')[0]);
    expect(lines.slice(3)).toEqual(raw.split('\r').slice(3));
  });

  it('masks FHIR Patient resources and subject displays, keeps the ServiceRequest identifier', () => {
    const bundle = {
      resourceType: 'Bundle',
      entry: [
        {
          resource: {
            resourceType: 'Patient',
            id: 'p1',
            name: [{ family: 'Doe' }],
            identifier: [{ value: 'MRN123' }],
            birthDate: '1970-01-01',
          },
        },
        {
          resource: {
            resourceType: 'ServiceRequest',
            identifier: [{ system: 'urn:placer', value: 'PL-1' }],
            subject: { reference: 'Patient/p1', display: 'Jane Doe' },
          },
        },
      ],
    };
    const masked = maskFhir(JSON.stringify(bundle));
    expect(masked).not.toMatch(/Doe|MRN123|1970/);
    expect(masked).toContain('PL-1');
    expect(masked).toContain('Patient/p1');
    expect(maskFhir('not json')).not.toContain('not json');
  });

  it('masks the identifier of a logical subject reference (the MRN), keeps the reference', () => {
    const sr = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:placer', value: 'PL-2' }],
      subject: { reference: 'Patient/p9', identifier: { system: 'urn:mrn', value: 'MRN987' }, display: 'Roe' },
    };
    const masked = maskFhir(JSON.stringify(sr));
    expect(masked).not.toMatch(/MRN987|Roe/);
    expect(masked).toContain('PL-2');
    expect(masked).toContain('Patient/p9');
  });

  it('shows the length of inline base64 images instead of the data', () => {
    const data = Buffer.alloc(3000, 7).toString('base64');
    const line = `OBX|1|ED|IMG^Smear image^L|1|^IM^PNG^Base64^${data}||||||F`;
    expect(elideBase64(line)).toBe(
      `OBX|1|ED|IMG^Smear image^L|1|^IM^PNG^Base64^[${data.length} characters of base64]||||||F`,
    );
    expect(elideBase64('PID|1||MRN123')).toBe('PID|1||MRN123');
  });

  it("never shows an image URL's password, masked or revealed; the host and path stay", () => {
    const hl7 = [
      'MSH|^~\\&|LIS|LAB|HB|H|20260101||ORM^O01|C1|P|2.5.1',
      'ORC|NW|PL-1',
      'OBX|1|RP|IMG^Smear^L||http://reader:s3cret@pacs.example/slide.jpg^IMAGE^JPEG~https://bob@x.example:8443/a.png',
    ].join('\r');
    for (const shown of [maskInbound('hl7', hl7), forDisplay(hl7)]) {
      expect(shown).not.toMatch(/s3cret|reader|bob@/);
      expect(shown).toContain(`http://${MASK}@pacs.example/slide.jpg^IMAGE^JPEG~https://${MASK}@x.example:8443/a.png`);
    }
    const fhir = JSON.stringify({
      resourceType: 'ServiceRequest',
      supportingInfo: [{ url: 'https://u%40x:p%3Aw@store.example/s.png' }, { url: 'https://store.example/@a.png' }],
    });
    for (const shown of [maskInbound('fhir', fhir), forDisplay(fhir)]) {
      expect(shown).not.toContain('p%3Aw');
      expect(shown).toContain(`https://${MASK}@store.example/s.png`);
      expect(shown).toContain('https://store.example/@a.png');
    }
  });
});
