import { asFhirDateTime, collectionTimeOf } from './collection-time';

describe('collection time of an order', () => {
  it('reads a FHIR order (collectedAt) and an HL7 order (collectionTime) alike', () => {
    expect(collectionTimeOf({ collectedAt: '2026-01-02T08:15:00Z' })).toBe('2026-01-02T08:15:00Z');
    expect(collectionTimeOf({ collectionTime: '2026-01-01T11:30:00+01:00' })).toBe('2026-01-01T11:30:00+01:00');
    expect(collectionTimeOf({ collectedAt: null, collectionTime: '2026-01-01' })).toBe('2026-01-01');
    expect(collectionTimeOf({})).toBeNull();
    expect(collectionTimeOf(null)).toBeNull();
  });

  it.each([
    ['2026-01-01T11:30:00+01:00', '2026-01-01T11:30:00+01:00'],
    ['2026-01-01T11:30:00.25Z', '2026-01-01T11:30:00.25Z'],
    // No zone: the sender's local time; FHIR needs a zone with a time, so only the date is true.
    ['2026-01-01T11:30:00', '2026-01-01'],
    ['2026-01-01', '2026-01-01'],
    ['2026-01', '2026-01'],
    ['2026', '2026'],
    ['20260101113000', null],
    ['', null],
    [null, null],
  ])('%s as a FHIR dateTime is %s', (iso, fhir) => {
    expect(asFhirDateTime(iso)).toBe(fhir);
  });
});
