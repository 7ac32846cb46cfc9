import type { z } from 'zod';
import { allSections, type AppConfig, type SectionName } from './config.schema';
import { isSecretKey } from './env-helpers';

/** Every problem found in the environment, one line each. Never carries a secret's value. */
export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(
      `Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`,
    );
    this.name = 'ConfigError';
  }
}

/**
 * Validates the named sections of the environment (all by default) and returns them typed.
 * Sections not asked for are returned as `undefined`-typed holes, so a caller only touches what it validated.
 */
export function loadConfig<S extends SectionName = SectionName>(
  env: NodeJS.ProcessEnv = process.env,
  sections: readonly S[] = Object.keys(allSections) as S[],
): Pick<AppConfig, S> {
  const problems: string[] = [];
  const out: Partial<AppConfig> = {};
  for (const name of sections) {
    const schema = allSections[name] as z.ZodObject;
    const result = schema.safeParse(env);
    if (result.success) {
      (out as Record<string, unknown>)[name] = result.data;
      continue;
    }
    for (const issue of result.error.issues) {
      const key = String(issue.path[0] ?? name);
      const raw = env[key];
      const shown =
        raw === undefined ? ' (not set)' : isSecretKey(key) ? ' (value hidden)' : ` (got ${JSON.stringify(raw)})`;
      problems.push(
        `${key}: ${issue.code === 'invalid_type' && raw === undefined ? 'is required' : issue.message}${shown}`,
      );
    }
  }
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return out as Pick<AppConfig, S>;
}

/** A copy of the environment view safe to print: secrets replaced by `***`. */
export function redactedEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  const known = new Set(Object.values(allSections).flatMap((s) => Object.keys((s as z.ZodObject).shape)));
  for (const key of known) {
    const v = env[key];
    if (v !== undefined) out[key] = isSecretKey(key) ? '***' : v;
  }
  return out;
}
