import { MllpDecoder, encodeFrame } from './framing';

describe('MllpDecoder memory', () => {
  it('holds a frame sent one byte per read in a few blocks, not one object per read', () => {
    // A peer dripping single bytes: each read must not cost a Buffer object (~100 bytes of heap) to
    // keep, or a 30 MiB frame would hold gigabytes while counting as 30 MiB.
    const decoder = new MllpDecoder(8 * 1024 * 1024);
    const frame = encodeFrame(Buffer.alloc(1_000_000, 'x'));
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < frame.length - 2; i++) decoder.push(frame.subarray(i, i + 1));
    const grown = process.memoryUsage().heapUsed - before;
    expect(grown).toBeLessThan(40 * 1024 * 1024); // one object per read: over 100 MiB
    expect(decoder.heldBytes).toBeGreaterThanOrEqual(1_000_000);
    expect(decoder.heldBytes).toBeLessThan(1_000_000 + 128 * 1024);
    const events = decoder.push(frame.subarray(frame.length - 2));
    expect(events).toHaveLength(1);
    expect(events[0]).toEqual({ kind: 'frame', data: Buffer.alloc(1_000_000, 'x') });
    expect(decoder.heldBytes).toBe(0);
  });

  it('keeps only the head of an oversize frame, not a copy of what came before', () => {
    const part = Buffer.concat([Buffer.from([0x0b]), Buffer.alloc(8 * 1024 * 1024, 'z')]);
    const before = process.memoryUsage().arrayBuffers;
    const decoders = Array.from({ length: 20 }, () => new MllpDecoder(1024 * 1024));
    for (const d of decoders) d.push(part);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    for (const d of decoders) expect(d.heldBytes).toBeLessThanOrEqual(4096);
    const ev = decoders[0]!.push(Buffer.from([0x1c, 0x0d]));
    expect(ev).toEqual([{ kind: 'oversize', head: Buffer.alloc(4096, 'z'), size: 8 * 1024 * 1024 }]);
  });

  it('counts the bytes of the frame in progress as they arrive, and none between frames', () => {
    const decoder = new MllpDecoder(1024 * 1024);
    expect(decoder.heldBytes).toBe(0);
    decoder.push(Buffer.from('\x0bMSH|first'));
    expect(decoder.heldBytes).toBeGreaterThanOrEqual(9);
    const events = decoder.push(Buffer.concat([Buffer.from('|part\x1c\r'), encodeFrame('MSH|whole')]));
    expect(events.map((e) => (e.kind === 'frame' ? e.data.toString() : e.kind))).toEqual([
      'MSH|first|part',
      'MSH|whole',
    ]);
    expect(decoder.heldBytes).toBe(0);
  });
});
