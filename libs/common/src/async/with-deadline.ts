/** The error {@link withDeadline} rejects with when the deadline passes first. */
export class DeadlineExceededError extends Error {
  constructor(
    /** What was waited for, as named by the caller (e.g. `"postgres"`, `"Redis"`). */
    public readonly what: string,
    /** The deadline, in milliseconds. */
    public readonly ms: number,
  ) {
    super(`${what} did not answer within ${ms} ms`);
    this.name = 'DeadlineExceededError';
  }
}

/**
 * Waits for `promise` for at most `ms` milliseconds.
 *
 * - settles as `promise` does (its value, or its rejection reason unchanged) when it settles in time;
 * - otherwise rejects with a {@link DeadlineExceededError} whose message names `what`:
 *   `"<what> did not answer within <ms> ms"`.
 *
 * The timer is cleared as soon as `promise` settles, so a quick answer leaves no timer behind to keep
 * the process alive (the timer is not `unref`'d: while nothing has answered, the deadline must still
 * fire). The work behind `promise` is not cancelled: pass an `AbortSignal` to it for that.
 */
export function withDeadline<T>(promise: PromiseLike<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DeadlineExceededError(what, ms)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (reason: unknown) => {
        clearTimeout(timer);
        reject(reason);
      },
    );
  });
}
