import { parseRetryAfter } from './client';
import type { ListStudiesResults } from './contract';
import { parseCallbackBody, parseNumLike, parseReport, parseStatus, parseStudies } from './results';
import { assertZipOfImages, normaliseFileType, sniffFileType, zipEntryNames } from './upload-source';
import { isRfc3339DateTime } from './rfc3339';

describe('parsing what Hemato.AI sends', () => {
  it('reads numbers sent as strings or numbers', () => {
    expect([parseNumLike('1'), parseNumLike(' 0.95 '), parseNumLike(7), parseNumLike('x'), parseNumLike('')]).toEqual([
      1,
      0.95,
      7,
      null,
      null,
    ]);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('reads studies found by tag oldest first, keeping only string tags; no list is an invalid answer', () => {
    const found = parseStudies({
      studies: [
        { pbs_study_id: 'b', created_at: '2026-01-02T00:00:00Z', tags: { bridge_order_id: 'o1' } },
        { pbs_study_id: 'a', created_at: '2026-01-01T00:00:00Z', tags: { bridge_order_id: 'o1', n: 3 } as never },
      ],
    });
    expect(found.map((s) => [s.studyId, s.tags])).toEqual([
      ['a', { bridge_order_id: 'o1' }],
      ['b', { bridge_order_id: 'o1' }],
    ]);
    expect(() => parseStudies({} as never)).toThrow(/results.studies/);
  });

  it('finds only studies that carry the tags asked for, even from a listing that ignored the filter', () => {
    // A service that does not filter by tag answers GET /pbs?tag.bridge_order_id=o2 with every study of the
    // account: the oldest, another order's (another patient's), must never be taken for this order's study.
    const listing: ListStudiesResults = {
      studies: [
        { pbs_study_id: 'other', created_at: '2026-01-01T00:00:00Z', tags: { bridge_order_id: 'o1' } },
        { pbs_study_id: 'untagged', created_at: '2026-01-01T12:00:00Z' },
        {
          pbs_study_id: 'mine',
          created_at: '2026-01-02T00:00:00Z',
          tags: { bridge_order_id: 'o2', patient_proxy_id: 'pp' },
        },
      ],
    };
    expect(parseStudies(listing, { bridge_order_id: 'o2' }).map((s) => s.studyId)).toEqual(['mine']);
    expect(parseStudies(listing, { bridge_order_id: 'o3' })).toEqual([]);
  });

  it('accepts the callback body with pbs_stody_id (sic) or pbs_study_id', () => {
    expect(parseCallbackBody({ pbs_stody_id: 'a', report_status: 'ready', progress: '1.0' })).toEqual({
      studyId: 'a',
      reportStatus: 'ready',
      progress: 1,
      event: undefined,
    });
    expect(parseCallbackBody({ pbs_study_id: 'b' }).studyId).toBe('b');
    expect(parseCallbackBody('junk')).toEqual({});
  });

  it('reads status and callback text cleaned and bounded: no NUL, no object, no megabytes', () => {
    const status = parseStatus({
      pbs_study_id: 's',
      report_status: 'failed\u0000',
      progress: 7,
      progress_message: { detail: 1 },
    } as never);
    expect(status).toEqual({ studyId: 's', reportStatus: 'failed', progress: 1, progressMessage: undefined });
    expect(parseStatus({ pbs_study_id: 's', report_status: 'x'.repeat(5000), progress: -1 } as never)).toMatchObject({
      reportStatus: `${'x'.repeat(64)}…`,
      progress: 0,
    });
    expect(parseStatus({ pbs_study_id: 's', report_status: ' READY ', progress: 1 } as never).reportStatus).toBe(
      'ready',
    );
    expect(parseStatus({ pbs_study_id: 's', report_status: 'Weird', progress: 1 } as never).reportStatus).toBe('Weird');
    expect(parseCallbackBody({ pbs_stody_id: 'a', report_status: 'ready\u0000', progress: 9, event: ['x'] })).toEqual({
      studyId: 'a',
      reportStatus: 'ready',
      progress: 1,
      event: undefined,
    });
  });

  it('tolerates a sparse report and refuses one without a study id', () => {
    const r = parseReport({ pbs_study_id: 's' } as never);
    expect(r).toMatchObject({ studyId: 's', fileIds: [], differentialDiagnosis: [], pathologyReport: '' });
    expect(() => parseReport({} as never)).toThrow(/pbs_study_id/);
    expect(parseStatus({ pbs_study_id: 's', report_status: 'ready' } as never).progress).toBe(1);
  });
});

describe('upload type checks', () => {
  it('normalises names and refuses other types', () => {
    expect(['jpg', '.JPEG', 'image/jpeg; q=1', 'png', 'zip'].map(normaliseFileType)).toEqual([
      'image/jpeg',
      'image/jpeg',
      'image/jpeg',
      'image/png',
      'application/zip',
    ]);
    expect(() => normaliseFileType('image/tiff')).toThrow(/JPEG, PNG or a ZIP/);
    expect(sniffFileType(Buffer.from('GIF89a'))).toBeUndefined();
  });

  it('lists the entries of a ZIP64 archive from its tail', async () => {
    // One central directory entry "x.png", then ZIP64 end record + locator + an end record saying "see ZIP64".
    const name = Buffer.from('x.png');
    const cd = Buffer.alloc(46 + name.length);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(name.length, 28);
    name.copy(cd, 46);
    const cdOffset = 100;
    const z64 = Buffer.alloc(56);
    z64.writeUInt32LE(0x06064b50, 0);
    z64.writeBigUInt64LE(1n, 32);
    z64.writeBigUInt64LE(BigInt(cd.length), 40);
    z64.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + cd.length), 8);
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(0xffff, 10);
    eocd.writeUInt32LE(0xffffffff, 12);
    eocd.writeUInt32LE(0xffffffff, 16);
    const zip = Buffer.concat([Buffer.alloc(cdOffset), cd, z64, loc, eocd]);
    const names = await zipEntryNames(zip.length, async (p, l) => zip.subarray(p, p + l));
    expect(names).toEqual(['x.png']);
    expect(() => assertZipOfImages(names)).not.toThrow();
    expect(() => assertZipOfImages(['dir/', 'a.exe'])).toThrow(/not \.jpg/);
  });
});

describe('isRfc3339DateTime', () => {
  it('accepts RFC 3339 date-times with Z or an offset, fractions and lower-case t/z', () => {
    for (const v of [
      '2021-01-02T15:04:05+07:00',
      '2026-11-27T07:30:00Z',
      '2024-02-29T23:59:60.123-05:30',
      '2026-01-01t00:00:00z',
    ])
      expect(isRfc3339DateTime(v)).toBe(true);
  });
  it("refuses dates alone, times without an offset, impossible values and the reference's own typo", () => {
    for (const v of [
      '2026-01-01',
      '2026-01-01T11:30:00',
      '2021-01-02T15:0405+07:00',
      '2025-02-29T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-01-01T24:00:00Z',
      '2026-01-01T10:00:00+0100',
      '',
    ])
      expect(isRfc3339DateTime(v)).toBe(false);
  });
});
