import { Faults } from './faults';

describe('Faults', () => {
  it('injects nothing by default', () => {
    const f = new Faults();
    for (let i = 0; i < 50; i++) expect(f.forRequest('/pbs')).toBeUndefined();
    expect(f.dropCallback()).toBe(false);
    expect(f.failRun()).toBeUndefined();
  });

  it('applies a share exactly (0.25 → every fourth request)', () => {
    const f = new Faults();
    f.set({ error_rate: 0.25 });
    const hits = Array.from({ length: 20 }, () => f.forRequest('/pbs')).filter(Boolean);
    expect(hits).toHaveLength(5);
    expect(hits[0]).toEqual({ kind: 'error', status: 503 });
  });

  it('counts down fail_next and rate_limit_next, 429 first', () => {
    const f = new Faults();
    f.set({ fail_next: 1, rate_limit_next: 1, retry_after_s: 9 });
    expect(f.forRequest('/x')).toEqual({ kind: 'rate_limit', retryAfterS: 9 });
    expect(f.forRequest('/x')).toEqual({ kind: 'error', status: 503 });
    expect(f.forRequest('/x')).toBeUndefined();
  });

  it('counts down drop_answer_next before fail_next, only on the given paths', () => {
    const f = new Faults();
    f.set({ drop_answer_next: 1, fail_next: 1, paths: ['/pbs/'] });
    expect(f.forRequest('/auth/login')).toBeUndefined();
    expect(f.forRequest('/pbs/1/tasks')).toEqual({ kind: 'drop_answer' });
    expect(f.forRequest('/pbs/1/status')).toEqual({ kind: 'error', status: 503 });
    expect(f.forRequest('/pbs/1/tasks')).toBeUndefined();
    expect(f.counters.answers_dropped).toBe(1);
  });

  it('limits request faults to the given path prefixes', () => {
    const f = new Faults();
    f.set({ error_rate: 1, latency_ms: 10, paths: ['/pbs'] });
    expect(f.forRequest('/heartbeat')).toBeUndefined();
    expect(f.latencyFor('/heartbeat')).toBe(0);
    expect(f.forRequest('/pbs/1/status')).toBeDefined();
  });

  it('reads * in a path as one segment: /pbs/*/tasks is the tasks of any study, nothing else', () => {
    const f = new Faults();
    f.set({ error_rate: 1, paths: ['/pbs/*/tasks'] });
    expect(f.forRequest('/pbs')).toBeUndefined();
    expect(f.forRequest('/pbs/4f0c-9a/files')).toBeUndefined();
    expect(f.forRequest('/pbs/4f0c-9a/tasks')).toBeDefined();
  });

  it('limits request faults to the given methods: POST /pbs slowed, GET /pbs not', () => {
    const f = new Faults();
    f.set({ latency_ms: 10, fail_next: 1, paths: ['/pbs'], methods: ['post'] });
    expect(f.latencyFor('/pbs', 'GET')).toBe(0);
    expect(f.forRequest('/pbs', 'GET')).toBeUndefined();
    expect(f.latencyFor('/pbs', 'POST')).toBe(10);
    expect(f.forRequest('/pbs', 'POST')).toEqual({ kind: 'error', status: 503 });
  });

  it('refuses unknown knobs and out-of-range shares', () => {
    const f = new Faults();
    expect(() => f.set({ nope: 1 })).toThrow();
    expect(() => f.set({ error_rate: 2 })).toThrow();
  });
});
