import { placeSpots } from './admin-orders.service';

describe('placing heat-map spots on images', () => {
  const images = [
    { id: 'a', content_hash: 'aaa', hemato_file_id: null },
    { id: 'b', content_hash: 'bbb', hemato_file_id: 'sha224-i-bbb' },
  ];

  it('puts each spot on the image its file id names (by Hemato file id or content hash)', () => {
    const results = {
      morphological_findings: {
        ring: {
          count: '2',
          heat_map: [
            { center: [10, 20], radius: 5, file_id: 'sha224-i-aaa' },
            { center: ['30', '40'], radius: '6', file_id: 'sha224-i-bbb' },
          ],
        },
        target: { count: '1', heat_map: [{ center: [1, 2], radius: 3, file_id: 'sha224-i-zzz' }] },
      },
    };
    const placed = placeSpots(results, images);
    expect(placed.get('a')).toEqual([{ finding: 'ring', x: 10, y: 20, r: 5 }]);
    expect(placed.get('b')).toEqual([{ finding: 'ring', x: 30, y: 40, r: 6 }]);
  });

  it('puts spots without a file id on the only image, and nowhere when there are several', () => {
    const results = { morphological_findings: { ring: { count: '1', heat_map: [{ center: [1, 2], radius: 3 }] } } };
    expect(placeSpots(results, [images[0]!]).get('a')).toHaveLength(1);
    const several = placeSpots(results, images);
    expect([...several.values()].flat()).toEqual([]);
  });
});
