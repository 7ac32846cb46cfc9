import { DeadlineExceededError, withDeadline } from './with-deadline';

describe('withDeadline', () => {
  it('resolves with the value of a promise that answers in time', async () => {
    await expect(withDeadline(Promise.resolve(42), 1000, 'the answer')).resolves.toBe(42);
  });

  it('passes on the rejection of a promise that fails in time, unchanged', async () => {
    const boom = new Error('connection refused');
    await expect(withDeadline(Promise.reject(boom), 1000, 'postgres')).rejects.toBe(boom);
  });

  it('rejects with an error naming what did not answer and the deadline, once the deadline passes', async () => {
    const started = Date.now();
    const outcome = withDeadline(new Promise(() => undefined), 50, 'Redis');
    await expect(outcome).rejects.toThrow(new DeadlineExceededError('Redis', 50));
    await expect(outcome).rejects.toThrow('Redis did not answer within 50 ms');
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
  });

  it('clears its timer when the promise settles, leaving nothing to keep the process alive', async () => {
    // Only the timers withDeadline makes are looked at: others in this process may come and go meanwhile.
    const made: NodeJS.Timeout[] = [];
    const realSetTimeout = global.setTimeout;
    const spy = jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const t = realSetTimeout(fn, ms);
      made.push(t);
      return t;
    }) as typeof setTimeout);
    try {
      await withDeadline(new Promise((r) => setImmediate(() => r('ok'))), 60_000, 'quick');
      await withDeadline(
        new Promise((_, reject) => setImmediate(() => reject(new Error('no')))),
        60_000,
        'failing',
      ).catch(() => undefined);
    } finally {
      spy.mockRestore();
    }
    expect(made).toHaveLength(2);
    // A cleared timer no longer holds the event loop open.
    const live = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    for (const t of made) clearTimeout(t); // no-op for cleared ones
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(live);
  });
});
