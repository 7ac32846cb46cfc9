/**
 * Hemato.AI unit strings → UCUM codes, for both result channels (FHIR valueQuantity, HL7 OBX-6). Units
 * not listed are sent as text only: labelled UCUM, a unit like `10^9/L` would not be one.
 */
const UCUM: Record<string, { code: string; unit?: string }> = {
  '%': { code: '%' },
  percent: { code: '%', unit: '%' },
  'cells/megapixel': { code: '{cells}/{megapixel}' },
  'cells/mpx': { code: '{cells}/{megapixel}', unit: 'cells/megapixel' },
  'cells/ul': { code: '/uL', unit: 'cells/uL' },
  'cells/µl': { code: '/uL', unit: 'cells/uL' },
  '/ul': { code: '/uL' },
  '10^9/l': { code: '10*9/L' },
  '10*9/l': { code: '10*9/L' },
  '10^12/l': { code: '10*12/L' },
  '10*12/l': { code: '10*12/L' },
  fl: { code: 'fL' },
  pg: { code: 'pg' },
  'g/dl': { code: 'g/dL' },
  'g/l': { code: 'g/L' },
  um: { code: 'um' },
  µm: { code: 'um', unit: 'µm' },
  count: { code: '{count}' },
  '{count}': { code: '{count}' },
  cells: { code: '{cells}' },
  ratio: { code: '1' },
};

/** The UCUM form of a unit, or null when we do not know it. */
export function toUcum(unit: string | null | undefined): { code: string; unit: string } | null {
  if (!unit) return null;
  const hit = UCUM[unit.trim().toLowerCase()];
  return hit ? { code: hit.code, unit: hit.unit ?? unit.trim() } : null;
}
