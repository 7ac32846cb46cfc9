import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { allSections } from './config.schema';

describe('.env.example', () => {
  it('documents every variable of the schema, and nothing else', () => {
    const text = readFileSync(path.join(__dirname, '../../../../.env.example'), 'utf8');
    const documented = new Set([...text.matchAll(/^([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]));
    const schema = new Set(Object.values(allSections).flatMap((s) => Object.keys((s as z.ZodObject).shape)));
    expect([...schema].filter((k) => !documented.has(k))).toEqual([]);
    expect([...documented].filter((k) => !schema.has(k))).toEqual([]);
  });
});
