import type { AdminRole } from '@hemato/persistence';
import { AdminUserEntity } from '@hemato/persistence';
import type { DataSource } from 'typeorm';
import { generatePassword, hashPassword, passwordProblem } from './password';

/**
 * Creates (or, with `resetIfExists`, re-keys, ending the user's sessions) a dashboard user. Used by `npm run admin:create` and by
 * {@link ensureFirstAdmin}. Returns the password, generated when none is given.
 */
export async function createAdminUser(
  ds: DataSource,
  opts: { email: string; role: AdminRole; password?: string; resetIfExists?: boolean },
): Promise<{ email: string; role: AdminRole; password: string; created: boolean }> {
  const email = opts.email.trim();
  if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw new Error(`not an e-mail address: ${email}`);
  const password = opts.password ?? generatePassword();
  const problem = passwordProblem(password);
  if (problem) throw new Error(`password ${problem}`);
  const hash = await hashPassword(password);
  const repo = ds.getRepository(AdminUserEntity);
  const existing = await repo.createQueryBuilder('u').where('lower(u.email) = lower(:email)', { email }).getOne();
  if (existing) {
    if (!opts.resetIfExists)
      throw new Error(`a dashboard user ${existing.email} already exists (use --reset to set a new password)`);
    await ds.transaction(async (m) => {
      await m
        .getRepository(AdminUserEntity)
        .update(
          { id: existing.id },
          { passwordHash: hash, role: opts.role, failedAttempts: 0, lockedUntil: null, disabled: false },
        );
      // A new password ends every session of the old one: whoever signed in with a leaked password is out.
      await m.query(`DELETE FROM admin_sessions WHERE user_id = $1`, [existing.id]);
    });
    return { email: existing.email, role: opts.role, password, created: false };
  }
  await repo.insert({ email, role: opts.role, passwordHash: hash });
  return { email, role: opts.role, password, created: true };
}

/**
 * For the embedded `npm start`: when there is no dashboard user at all, creates `admin@localhost`
 * with a random password and returns it, to be printed once; otherwise returns null. The migrations
 * must have run. Two processes racing both see "no user"; the unique e-mail index lets only one win.
 */
export async function ensureFirstAdmin(ds: DataSource): Promise<{ email: string; password: string } | null> {
  if ((await ds.getRepository(AdminUserEntity).count()) > 0) return null;
  try {
    const r = await createAdminUser(ds, { email: 'admin@localhost', role: 'admin' });
    return { email: r.email, password: r.password };
  } catch {
    return null;
  }
}
