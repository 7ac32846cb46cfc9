import { toDefaultDelimiters, unescapeHl7 } from './escaping';

describe('toDefaultDelimiters', () => {
  const dollar = { field: '|', component: '$', repetition: '~', escape: '\\', subcomponent: '&' };

  it('re-encodes a PID sent with another component separator into ^ (what our ORU uses)', () => {
    expect(toDefaultDelimiters('PID|1||MRN555$$$GENHOSP$MR||DOE$JANE||19700101|F', dollar)).toBe(
      'PID|1||MRN555^^^GENHOSP^MR||DOE^JANE||19700101|F',
    );
  });

  it('escapes a character that was data for the sender but is a delimiter for us', () => {
    const out = toDefaultDelimiters('PID|1||A^B$$$H', dollar);
    expect(out).toBe('PID|1||A\\S\\B^^^H');
    expect(unescapeHl7(out.split('|')[3]!.split('^')[0]!)).toBe('A^B');
  });

  it('keeps a line break (\\.br\\) as an escape, never a raw newline inside the segment', () => {
    expect(toDefaultDelimiters('PID|1||X$$$H||A\\.br\\B', dollar)).toBe('PID|1||X^^^H||A\\.br\\B');
  });

  it('leaves a segment in the default delimiters as it is, escapes included', () => {
    const d = { field: '|', component: '^', repetition: '~', escape: '\\', subcomponent: '&' };
    const pid = 'PID|1||MRN1^^^H\\T\\X^MR~2^^^NAT^NI||O\\F\\BRIEN^ANN';
    expect(toDefaultDelimiters(pid, d)).toBe(pid);
  });
});
