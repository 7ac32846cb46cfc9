import { useCallback, useEffect, useState } from 'react';
import { api, CHANNELS, fmtTime, STATUSES, type OrderRow } from '../api';
import { ProgressBar, StatusChip } from '../components/StatusChip';
import { useOrderChanges } from '../live';
import { linkProps, navigate, useLocation } from '../router';

const PAGE = 50;
const WORKING = new Set(['uploading', 'tasks_requested', 'processing']);

/** Filters live in the URL, so a filtered list can be bookmarked or sent to a colleague. */
function filtersFrom(search: URLSearchParams) {
  return {
    status: search.get('status') ?? '',
    channel: search.get('channel') ?? '',
    from: search.get('from') ?? '',
    to: search.get('to') ?? '',
    q: search.get('q') ?? '',
  };
}
type Filters = ReturnType<typeof filtersFrom>;

function query(f: Filters, extra: Record<string, string> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...f, ...extra })) {
    if (!v) continue;
    // Dates from the picker are local days: send the instant that day starts (to: the next day).
    if (k === 'from') p.set(k, new Date(`${v}T00:00`).toISOString());
    else if (k === 'to') p.set(k, new Date(new Date(`${v}T00:00`).getTime() + 86_400_000).toISOString());
    else p.set(k, v);
  }
  return p.toString();
}

export function OrdersPage() {
  const { search } = useLocation();
  const filters = filtersFrom(search);
  const key = query(filters);
  const countsKey = query({ ...filters, status: '' });
  const [rows, setRows] = useState<OrderRow[]>([]);
  const [counts, setCounts] = useState<{ counts: Record<string, number>; total: number } | null>(null);
  const [cursors, setCursors] = useState<string[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [qInput, setQInput] = useState(filters.q);
  const [authority, setAuthority] = useState('');
  const [identifier, setIdentifier] = useState('');
  const [lookupError, setLookupError] = useState<string | null>(null);
  const cursor = cursors[cursors.length - 1];

  const load = useCallback(async () => {
    try {
      const base = key;
      const [list, c] = await Promise.all([
        api<{ items: OrderRow[]; nextCursor: string | null }>(
          `/api/admin/orders?${base}${base ? '&' : ''}limit=${PAGE}${cursor ? `&cursor=${cursor}` : ''}`,
        ),
        api<{ counts: Record<string, number>; total: number }>(`/api/admin/orders/counts?${countsKey}`),
      ]);
      setRows(list.items);
      setNext(list.nextCursor);
      setCounts(c);
      setError(null);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }, [key, countsKey, cursor]);

  useEffect(() => {
    void load();
  }, [load]);
  useEffect(() => setCursors([]), [key]);
  useOrderChanges(() => void load());

  const setFilter = (patch: Partial<Filters>) => {
    const f = { ...filters, ...patch };
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(f)) if (v) p.set(k, v);
    const qs = p.toString();
    navigate(`/${qs ? '?' + qs : ''}`, true);
  };

  return (
    <section>
      <div className="page-head">
        <h1>Orders</h1>
        <span className="muted">{counts ? `${counts.total} orders` : ''}</span>
      </div>
      <div className="chips" role="group" aria-label="Filter by status">
        <button
          type="button"
          className={`chip-button ${filters.status === '' ? 'selected' : ''}`}
          onClick={() => setFilter({ status: '' })}
        >
          all <span className="count">{counts?.total ?? '…'}</span>
        </button>
        {STATUSES.map((s) => (
          <button
            type="button"
            key={s}
            className={`chip-button status-${s} ${filters.status === s ? 'selected' : ''}`}
            aria-pressed={filters.status === s}
            onClick={() => setFilter({ status: filters.status === s ? '' : s })}
          >
            {s.replace(/_/g, ' ')} <span className="count">{counts?.counts[s] ?? 0}</span>
          </button>
        ))}
      </div>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ q: qInput.trim() });
        }}
      >
        <label>
          Search
          <input
            type="search"
            placeholder="placer / filler number or proxy id"
            value={qInput}
            onChange={(e) => setQInput(e.target.value)}
          />
        </label>
        <label>
          Channel
          <select value={filters.channel} onChange={(e) => setFilter({ channel: e.target.value })}>
            <option value="">any</option>
            {CHANNELS.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="date" value={filters.from} onChange={(e) => setFilter({ from: e.target.value })} />
        </label>
        <label>
          To
          <input type="date" value={filters.to} onChange={(e) => setFilter({ to: e.target.value })} />
        </label>
        <button type="submit">Search</button>
        {(filters.q || filters.channel || filters.from || filters.to || filters.status) && (
          <button
            type="button"
            className="secondary"
            onClick={() => {
              setQInput('');
              navigate('/', true);
            }}
          >
            Clear
          </button>
        )}
      </form>
      {/*
        By MRN: looked up through the API (a POST, audited) and turned into the patient's proxy id, which the
        list filters by. The identifier never goes into the URL, and the inputs are emptied once it is found.
      */}
      <form
        className="filters"
        aria-label="Find a patient"
        onSubmit={(e) => {
          e.preventDefault();
          void (async () => {
            try {
              const found = await api<{ proxyId: string }>('/api/admin/patients/lookup', {
                method: 'POST',
                json: { authority: authority.trim(), identifier: identifier.trim() },
              });
              setLookupError(null);
              setIdentifier('');
              setQInput(found.proxyId);
              setFilter({ q: found.proxyId });
            } catch (err) {
              setLookupError(err instanceof Error ? err.message : String(err));
            }
          })();
        }}
      >
        <label>
          Assigning authority
          <input
            name="authority"
            autoComplete="off"
            placeholder="PID-3.4 or identifier system"
            value={authority}
            onChange={(e) => setAuthority(e.target.value)}
          />
        </label>
        <label>
          Patient identifier
          <input
            name="identifier"
            autoComplete="off"
            placeholder="MRN"
            value={identifier}
            onChange={(e) => setIdentifier(e.target.value)}
          />
        </label>
        <button type="submit" disabled={!authority.trim() || !identifier.trim()}>
          Find patient
        </button>
        {lookupError && (
          <span role="alert" className="error">
            {lookupError}
          </span>
        )}
      </form>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <table className="orders">
        <thead>
          <tr>
            <th>Filler no.</th>
            <th>Placer no.</th>
            <th>Status</th>
            <th>Channel</th>
            <th>Patient proxy</th>
            <th>Test</th>
            <th>Created</th>
            <th>Last change</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((o) => (
            <tr key={o.id} data-order-id={o.id}>
              <td>
                <a {...linkProps(`/orders/${o.id}`)}>{o.fillerOrderNumber}</a>
              </td>
              <td>{o.placerOrderNumber ?? '—'}</td>
              <td>
                <StatusChip status={o.status} />
                {WORKING.has(o.status) && o.hematoProgress !== null && <ProgressBar value={o.hematoProgress} />}
                {o.status === 'failed' && o.failedStep && <div className="muted small">at {o.failedStep}</div>}
              </td>
              <td>{o.sourceChannel}</td>
              <td className="mono">{o.proxyId ?? '—'}</td>
              <td title={o.testCode ?? undefined}>{o.testDisplay ?? o.testCode ?? '—'}</td>
              <td>{fmtTime(o.createdAt)}</td>
              <td>{fmtTime(o.statusChangedAt)}</td>
            </tr>
          ))}
          {rows.length === 0 && (
            <tr>
              <td colSpan={8} className="muted">
                No orders match.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <div className="pager">
        <button
          type="button"
          className="secondary"
          disabled={cursors.length === 0}
          onClick={() => setCursors((c) => c.slice(0, -1))}
        >
          ← Newer
        </button>
        <span className="muted">Page {cursors.length + 1}</span>
        <button
          type="button"
          className="secondary"
          disabled={!next}
          onClick={() => next && setCursors((c) => [...c, next])}
        >
          Older →
        </button>
      </div>
    </section>
  );
}
