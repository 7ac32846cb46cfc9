import { FhirOperationError } from '../outcome/operation-outcome';
import { decodeSearchCursor, encodeSearchCursor, type SearchCursor } from './search-cursor';

const SECRET = 'x'.repeat(32);
const scope = {
  type: 'Task',
  client: 'lab-a',
  criteria: [
    ['focus', 'ServiceRequest/1'],
    ['_id', 'a,b'],
  ] as Array<[string, string]>,
};
const at: SearchCursor = {
  direction: 'after',
  at: '2026-11-29T04:36:20.123456Z',
  id: '0b5e6a4c-2f7e-4a9b-9c1d-3e2f1a0b9c8d',
};

const refused = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof FhirOperationError && err.status === 400;
  }
  return false;
};

describe('search cursor', () => {
  it('gives back the position it encodes, microseconds included, whatever order the criteria come in', () => {
    const c = encodeSearchCursor(SECRET, scope, at);
    expect(decodeSearchCursor(SECRET, scope, c)).toEqual(at);
    expect(decodeSearchCursor(SECRET, { ...scope, criteria: [...scope.criteria].reverse() }, c)).toEqual(at);
    const back = { ...at, direction: 'before' as const };
    expect(decodeSearchCursor(SECRET, scope, encodeSearchCursor(SECRET, scope, back))).toEqual(back);
  });

  it("refuses (400) a cursor of another search, another client's, another type's, or signed with another secret", () => {
    const c = encodeSearchCursor(SECRET, scope, at);
    expect(refused(() => decodeSearchCursor(SECRET, { ...scope, client: 'lab-b' }, c))).toBe(true);
    expect(refused(() => decodeSearchCursor(SECRET, { ...scope, type: 'DiagnosticReport' }, c))).toBe(true);
    expect(refused(() => decodeSearchCursor(SECRET, { ...scope, criteria: [['_id', 'a']] }, c))).toBe(true);
    expect(refused(() => decodeSearchCursor('y'.repeat(32), scope, c))).toBe(true);
  });

  it('refuses (400) an edited position, an edited signature and malformed values', () => {
    const [payload, sig] = encodeSearchCursor(SECRET, scope, at).split('.') as [string, string];
    const moved = Buffer.from(`a2026-11-29T04:36:20.123457Z_${at.id}`).toString('base64url');
    for (const bad of [
      `${moved}.${sig}`,
      `${payload}.${sig.slice(1)}`,
      `${payload}.${sig}.x`,
      payload,
      '',
      '.',
      'a.b',
    ]) {
      expect([bad, refused(() => decodeSearchCursor(SECRET, scope, bad))]).toEqual([bad, true]);
    }
  });
});
