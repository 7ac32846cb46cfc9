import { hl7DateTimeToIso, isoToHl7DateTime } from './datetime';

describe('HL7 date/time', () => {
  it.each([
    ['2026', '2026'],
    ['202601', '2026-01'],
    ['20260101', '2026-01-01'],
    ['202601011130', '2026-01-01T11:30:00'],
    ['20260101113005', '2026-01-01T11:30:05'],
    ['20260101113005.1234', '2026-01-01T11:30:05.1234'],
    ['20260101113005+0100', '2026-01-01T11:30:05+01:00'],
    ['20260101113005.5-0530', '2026-01-01T11:30:05.5-05:30'],
    ['20240229', '2024-02-29'],
    ['20261231235960', '2026-12-31T23:59:60'],
  ])('reads %s as %s', (hl7, iso) => {
    expect(hl7DateTimeToIso(hl7)).toBe(iso);
  });

  it.each([
    ['2026-01-01', 'ISO, not HL7'],
    ['20261301', 'month 13'],
    ['20250229', '29 February of a common year'],
    ['20260431', '31 April'],
    ['2026010124', 'an hour alone'],
    ['202601012400', 'hour 24'],
    ['202601011260', 'minute 60'],
    ['20260101120061', 'second 61'],
    ['20260101120000+1500', 'offset beyond 14 hours'],
    ['20260101120000.12345', 'five fractional digits'],
    ['yesterday', 'words'],
    ['2026010', 'an odd digit'],
  ])('refuses %s (%s)', (hl7) => {
    expect(hl7DateTimeToIso(hl7)).toBeNull();
  });

  it.each([
    ['2026-01-01T11:30:05+01:00', '20260101113005+0100'],
    ['2026-01-01T11:30:05Z', '20260101113005+0000'],
    ['2026-01-01T11:30:05.123456Z', '20260101113005.1234+0000'],
    ['2026-01-01T11:30:00', '20260101113000'],
    ['2026-01-01', '20260101'],
    ['2026', '2026'],
    ['not a date', ''],
    [null, ''],
  ])('writes %s as %s, whatever the machine zone', (iso, hl7) => {
    expect(isoToHl7DateTime(iso)).toBe(hl7);
  });

  it('round-trips what it reads', () => {
    for (const v of ['20260101', '20260101113005.12-0330', '202601011130']) {
      expect(isoToHl7DateTime(hl7DateTimeToIso(v))).toBe(v.length === 12 ? `${v}00` : v);
    }
  });
});
