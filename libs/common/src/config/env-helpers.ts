import { z } from 'zod';

/**
 * Builders for environment variables. Every variable is a string in the environment;
 * these turn them into typed values with messages a person can act on.
 */

const SECRET_KEYS = new Set<string>();

/** Marks a variable as secret: its value is never printed, not even in a validation error. */
export function secret<T extends z.ZodType>(key: string, schema: T): T {
  SECRET_KEYS.add(key);
  return schema;
}

export function isSecretKey(key: string): boolean {
  return (
    SECRET_KEYS.has(key) || /SECRET|PASSWORD|PASS_HASH|PRIVATE_KEY|API_KEYS|_TOKEN$|ENCRYPTION_KEY|HMAC_KEY/.test(key)
  );
}

export const port = (def: number) =>
  z.coerce
    .number({ message: 'must be a port number' })
    .int('must be a whole number')
    .min(0, 'must be 0..65535')
    .max(65535, 'must be 0..65535')
    .default(def);

export const int = (def: number, min = 0) =>
  z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .min(min, `must be >= ${min}`)
    .default(def);

export const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .default(def ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** A boolean with no default: unset (or empty) stays undefined, for a default that depends on other variables. */
export const optionalBool = () =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
    .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' }).optional())
    .transform((v) => (v === undefined ? undefined : v === 'true' || v === '1' || v === 'yes'));

export const optionalString = () =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

export const url = (protocols: string[], example: string) =>
  z
    .string()
    .trim()
    .refine(
      (v) => {
        try {
          return protocols.includes(new URL(v).protocol.replace(/:$/, ''));
        } catch {
          return false;
        }
      },
      { message: `must be a ${protocols.map((p) => p + '://').join(' or ')} URL, e.g. ${example}` },
    );

export const optionalUrl = (protocols: string[], example: string) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
    .pipe(url(protocols, example).optional());

/** A comma-separated list; empty entries dropped. */
export const list = () =>
  z
    .string()
    .optional()
    .transform((v) =>
      (v ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
