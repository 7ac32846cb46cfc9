import { unstorableTextAt } from './storable-text';

describe('unstorableTextAt', () => {
  it('passes ordinary text, paired surrogates (emoji) and non-strings', () => {
    expect(unstorableTextAt({ a: ['Müller 😀', 5, null, true, { b: 'x\ty\n' }] }, 'R')).toBeUndefined();
  });

  it('names the element holding U+0000 or a lone surrogate, or the object whose property name does', () => {
    expect(unstorableTextAt({ note: [{ text: 'ok' }, { text: 'a\u0000b' }] }, 'SR')).toBe('SR.note[1].text');
    expect(unstorableTextAt({ id: 'x\ud800' }, 'SR')).toBe('SR.id');
    expect(unstorableTextAt({ id: '\udc00x' }, 'SR')).toBe('SR.id');
    expect(unstorableTextAt({ a: { 'k\u0000': 1 } }, 'SR')).toBe('SR.a');
  });

  it('walks a deeply nested value without overflowing the stack', () => {
    let deep: unknown = 'a\u0000';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(unstorableTextAt(deep, 'R')).toMatch(/^R\[0\]/);
  });
});
