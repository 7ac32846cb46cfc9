import { useCallback, useEffect, useState } from 'react';
import { api, ApiError, fmtTime, type Me } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { linkProps } from '../router';

interface Probe {
  url: string | null;
  ok: boolean;
  status?: number;
  ms?: number;
  error?: string;
  body?: unknown;
}
interface Health {
  at: string;
  readiness: { status: string; checks: Record<string, { ok: boolean; ms: number; error?: string }> };
  mllp: {
    configured: { host: string; port: number };
    stats: null | {
      listening: boolean;
      host: string;
      port: number;
      tls: boolean;
      connections: number;
      peers?: Array<{ remote: string; since?: string; messages?: number }>;
      messagesTotal?: number;
      lastMessageAt?: string | null;
      inFlightBytes?: number;
      bufferedBytes?: number;
      inFlightLimitBytes?: number;
      bufferedLimitBytes?: number;
      tlsCertificate?: { subject: string; fingerprint256: string; validTo: string; loadedAt: string } | null;
    };
  };
  queues: Array<{ name: string; counts?: Record<string, number>; error?: string }>;
  hemato: Probe;
  ehr: Probe;
  retention?: {
    days: number;
    lastPurge: { at: string; detail: { orders?: number; inboundMessages?: number; patientIdentities?: number } } | null;
  };
  lastErrors: {
    orders: Array<{
      id: string;
      filler_order_number: string;
      failed_step: string | null;
      failure_reason: string | null;
      status_changed_at: string;
    }>;
    deliveries: Array<{
      id: string;
      order_id: string;
      filler_order_number: string;
      target: string;
      attempts: number;
      outcome: string | null;
      error: string | null;
      updated_at: string;
    }>;
    inbound: Array<{
      id: string;
      channel: string;
      sender: string;
      control_id: string;
      message_type: string | null;
      status: string;
      ack_code: string | null;
      error: string | null;
      received_at: string;
    }>;
  };
}

function Dot({ ok }: { ok: boolean }) {
  return <span className={ok ? 'dot ok' : 'dot bad'}>{ok ? 'up' : 'down'}</span>;
}

/** Days before expiry from which the served certificate is flagged: renewals are due well before. */
const CERT_WARN_DAYS = 14;

function CertificateLine({
  cert,
}: {
  cert: { subject: string; fingerprint256: string; validTo: string; loadedAt: string };
}) {
  const days = Math.floor((Date.parse(cert.validTo) - Date.now()) / 86_400_000);
  const soon = days < CERT_WARN_DAYS;
  return (
    <p className={soon ? 'error small' : 'muted small'}>
      TLS certificate <span className="mono">{cert.subject}</span> valid until {fmtTime(cert.validTo)}
      {soon ? (days < 0 ? ' — expired' : ` — expires in ${days} day${days === 1 ? '' : 's'}`) : ''} · loaded{' '}
      {fmtTime(cert.loadedAt)}
      <br />
      SHA-256 <span className="mono">{cert.fingerprint256}</span>
    </p>
  );
}

type InboundRow = Health['lastErrors']['inbound'][number];

/**
 * A ServiceRequest the EHR's Subscription brought in and the intake refused (the gateway's own sender name for
 * it): nobody was answered, so it can be replayed, read again from the EHR. A refused request a FHIR client
 * POSTed itself got its OperationOutcome, and the client sends it again.
 */
const fromSubscription = (m: InboundRow) => m.channel === 'fhir' && m.sender === 'ehr-subscription';

/** Refused, and replayable: an HL7 message, or a ServiceRequest read from the EHR. */
const replayable = (m: InboundRow) => m.status === 'rejected' && (m.channel === 'hl7' || fromSubscription(m));

/**
 * Inbound messages, one row each: when, who, what became of it; View, and Replay for a refused HL7 message or
 * ServiceRequest read from the EHR.
 */
function MessageTable(props: {
  rows: InboundRow[];
  isAdmin: boolean;
  busy: boolean;
  shownId: string | undefined;
  onView: (m: InboundRow) => void;
  onReplay: (m: InboundRow) => void;
}) {
  return (
    <table>
      <tbody>
        {props.rows.map((m) => (
          <tr key={m.id}>
            <td className="nowrap">{fmtTime(m.received_at)}</td>
            <td className="mono">
              {m.sender} {m.control_id}
            </td>
            <td>
              {m.channel} {m.message_type ?? ''}
              {fromSubscription(m) ? ' read from the EHR (Subscription)' : ''} · {m.status} {m.ack_code ?? ''}
            </td>
            <td>{m.error ?? ''}</td>
            <td>
              <button
                type="button"
                className="secondary"
                aria-label={`View ${m.control_id}`}
                aria-expanded={props.shownId === m.id}
                onClick={() => props.onView(m)}
              >
                View
              </button>
            </td>
            {props.isAdmin && (
              <td>
                {replayable(m) && (
                  <button
                    type="button"
                    className="secondary"
                    disabled={props.busy}
                    aria-label={`Replay ${m.control_id}`}
                    onClick={() => props.onReplay(m)}
                  >
                    Replay
                  </button>
                )}
              </td>
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const COLUMNS = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'];

export function HealthPage({ me }: { me: Me }) {
  const [h, setH] = useState<Health | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [replaying, setReplaying] = useState<InboundRow | null>(null);
  const [outcome, setOutcome] = useState<{ ok: boolean; message: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [shown, setShown] = useState<{
    id: string;
    controlId: string;
    rawMasked: string;
    ack: string | null;
    purgedAt: string | null;
  } | null>(null);
  const [query, setQuery] = useState('');
  const [lastQuery, setLastQuery] = useState('');
  const [found, setFound] = useState<InboundRow[] | null>(null);
  // "Did you get MSG00123?": every message with that control id, whatever became of it.
  const find = async (q = query.trim()) => {
    try {
      const r = await api<{ messages: InboundRow[] }>(`/api/admin/inbound?controlId=${encodeURIComponent(q)}`);
      setFound(r.messages);
      setLastQuery(q);
    } catch (err) {
      setOutcome({ ok: false, message: err instanceof ApiError ? err.message : String(err) });
    }
  };
  // The refused message itself (patient masked) and the ACK it got: what the sender has to fix.
  const view = async (id: string) => {
    if (shown?.id === id) return setShown(null);
    try {
      const m = await api<{ control_id: string; rawMasked: string; ack: string | null; purged_at: string | null }>(
        `/api/admin/inbound/${id}`,
      );
      setShown({ id, controlId: m.control_id, rawMasked: m.rawMasked, ack: m.ack, purgedAt: m.purged_at });
    } catch (err) {
      setOutcome({ ok: false, message: err instanceof ApiError ? err.message : String(err) });
    }
  };
  const load = useCallback(async () => {
    try {
      setH(await api<Health>('/api/admin/health'));
      setError(null);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }, []);
  // A refused HL7 message (or ServiceRequest from the EHR), read again once its cause is fixed (e.g. its test code now mapped).
  const replay = async (id: string) => {
    setReplaying(null);
    setShown(null); // its stored ACK changes with the replay
    setBusy(true);
    setOutcome(null);
    try {
      setOutcome(
        await api<{ ok: boolean; message: string }>(`/api/admin/inbound/${id}/replay`, { method: 'POST', json: {} }),
      );
      void load();
      if (lastQuery) void find(lastQuery); // the replayed message's status changed
    } catch (err) {
      setOutcome({ ok: false, message: err instanceof ApiError ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    void load();
    const t = window.setInterval(() => void load(), 5000);
    return () => window.clearInterval(t);
  }, [load]);

  return (
    <section>
      <div className="page-head">
        <h1>Health</h1>
        <span className="muted">{h ? `as of ${fmtTime(h.at)} · refreshes every 5 s` : ''}</span>
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {h && (
        <>
          <div className="grid3">
            <section className="card" aria-labelledby="h-store">
              <h2 id="h-store">Database and queue store</h2>
              {Object.entries(h.readiness.checks).map(([name, c]) => (
                <p key={name}>
                  <Dot ok={c.ok} /> {name} <span className="muted">{c.ms} ms</span>{' '}
                  {c.error && <span className="error small">{c.error}</span>}
                </p>
              ))}
            </section>
            <section className="card" aria-labelledby="h-hemato">
              <h2 id="h-hemato">Hemato.AI heartbeat</h2>
              <p>
                <Dot ok={h.hemato.ok} /> <span className="mono small">{h.hemato.url}</span>
              </p>
              <p className="muted small">
                {h.hemato.status ? `HTTP ${h.hemato.status} · ` : ''}
                {h.hemato.ms !== undefined ? `${h.hemato.ms} ms` : ''} {h.hemato.error ?? ''}
                {h.hemato.body && typeof h.hemato.body === 'object' && 'version' in h.hemato.body
                  ? ` · version ${String((h.hemato.body as { version: unknown }).version)}`
                  : ''}
              </p>
            </section>
            <section className="card" aria-labelledby="h-ehr">
              <h2 id="h-ehr">EHR (FHIR)</h2>
              {h.ehr.url ? (
                <>
                  <p>
                    <Dot ok={h.ehr.ok} /> <span className="mono small">{h.ehr.url}</span>
                  </p>
                  <p className="muted small">
                    {h.ehr.status ? `HTTP ${h.ehr.status} · ` : ''}
                    {h.ehr.ms !== undefined ? `${h.ehr.ms} ms` : ''} {h.ehr.error ?? ''}
                  </p>
                </>
              ) : (
                <p className="muted">Not configured (FHIR_EHR_BASE_URL).</p>
              )}
            </section>
          </div>
          <section className="card" aria-labelledby="h-mllp">
            <h2 id="h-mllp">MLLP listener</h2>
            {h.mllp.stats ? (
              <>
                <p>
                  <Dot ok={h.mllp.stats.listening} /> {h.mllp.stats.host}:{h.mllp.stats.port}{' '}
                  {h.mllp.stats.tls ? '(TLS)' : ''} · {h.mllp.stats.connections} open connection
                  {h.mllp.stats.connections === 1 ? '' : 's'}
                  {h.mllp.stats.messagesTotal !== undefined ? ` · ${h.mllp.stats.messagesTotal} messages` : ''}
                  {h.mllp.stats.lastMessageAt ? ` · last ${fmtTime(h.mllp.stats.lastMessageAt)}` : ''}
                </p>
                {h.mllp.stats.inFlightBytes !== undefined && h.mllp.stats.bufferedBytes !== undefined && (
                  // Memory held for senders: near a limit, senders pushing ahead are made to wait (see README).
                  <p className="muted mllp-memory">
                    Held: {fmtBytes(h.mllp.stats.inFlightBytes)} of messages being handled
                    {h.mllp.stats.inFlightLimitBytes
                      ? ` (limit ${fmtBytes(h.mllp.stats.inFlightLimitBytes)})`
                      : ''} · {fmtBytes(h.mllp.stats.bufferedBytes)} of unfinished frames
                    {h.mllp.stats.bufferedLimitBytes ? ` (limit ${fmtBytes(h.mllp.stats.bufferedLimitBytes)})` : ''}
                  </p>
                )}
                {h.mllp.stats.tlsCertificate && <CertificateLine cert={h.mllp.stats.tlsCertificate} />}
                {h.mllp.stats.peers && h.mllp.stats.peers.length > 0 && (
                  <table>
                    <thead>
                      <tr>
                        <th>Peer</th>
                        <th>Since</th>
                        <th>Messages</th>
                      </tr>
                    </thead>
                    <tbody>
                      {h.mllp.stats.peers.map((c, i) => (
                        <tr key={i}>
                          <td className="mono">{c.remote}</td>
                          <td>{fmtTime(c.since)}</td>
                          <td>{c.messages ?? '—'}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                )}
              </>
            ) : (
              <p className="muted">
                Configured on {h.mllp.configured.host}:{h.mllp.configured.port}; the listener reports no connection
                statistics in this process.
              </p>
            )}
          </section>
          <section className="card" aria-labelledby="h-queues">
            <h2 id="h-queues">Queues</h2>
            <table className="queues">
              <thead>
                <tr>
                  <th>Queue</th>
                  {COLUMNS.map((c) => (
                    <th key={c}>{c}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {h.queues.map((q) => (
                  <tr key={q.name} data-queue={q.name}>
                    <th scope="row">{q.name}</th>
                    {q.counts ? (
                      COLUMNS.map((c) => (
                        <td key={c} className={c === 'failed' && (q.counts?.[c] ?? 0) > 0 ? 'error' : ''}>
                          {q.counts?.[c] ?? 0}
                        </td>
                      ))
                    ) : (
                      <td colSpan={COLUMNS.length} className="error">
                        {q.error}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
          {h.retention && (
            <section className="card" aria-labelledby="h-retention">
              <h2 id="h-retention">Retention</h2>
              <p data-testid="retention-policy">
                {h.retention.days > 0
                  ? `Patient data is erased ${h.retention.days} days after an order finished (RETENTION_DAYS).`
                  : 'Off: patient data is kept (RETENTION_DAYS=0).'}
              </p>
              <p className="muted small" data-testid="retention-last">
                {h.retention.lastPurge
                  ? `Last erasure ${fmtTime(h.retention.lastPurge.at)}: ${h.retention.lastPurge.detail.orders ?? 0} orders, ` +
                    `${h.retention.lastPurge.detail.inboundMessages ?? 0} inbound messages, ` +
                    `${h.retention.lastPurge.detail.patientIdentities ?? 0} patient identities (in the audit log).`
                  : 'Nothing erased so far.'}
              </p>
            </section>
          )}
          <section className="card" aria-labelledby="h-errors">
            <h2 id="h-errors">Last errors</h2>
            <h3>Failed orders</h3>
            {h.lastErrors.orders.length === 0 ? (
              <p className="muted">None.</p>
            ) : (
              <table>
                <tbody>
                  {h.lastErrors.orders.map((o) => (
                    <tr key={o.id}>
                      <td className="nowrap">{fmtTime(o.status_changed_at)}</td>
                      <td>
                        <a {...linkProps(`/orders/${o.id}`)}>{o.filler_order_number}</a>
                      </td>
                      <td>{o.failed_step ?? ''}</td>
                      <td>{o.failure_reason ?? ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <h3>Failed deliveries</h3>
            {h.lastErrors.deliveries.length === 0 ? (
              <p className="muted">None.</p>
            ) : (
              <table>
                <tbody>
                  {h.lastErrors.deliveries.map((d) => (
                    <tr key={d.id}>
                      <td className="nowrap">{fmtTime(d.updated_at)}</td>
                      <td>
                        <a {...linkProps(`/orders/${d.order_id}`)}>{d.filler_order_number}</a>
                      </td>
                      <td>
                        {d.target} · {d.attempts} attempts {d.outcome ? `· ${d.outcome}` : ''}
                      </td>
                      <td>{d.error ?? ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <h3>Refused inbound messages</h3>
            {outcome && (
              <p role="status" className={outcome.ok ? 'ok' : 'error'}>
                {outcome.message}
              </p>
            )}
            {h.lastErrors.inbound.length === 0 ? (
              <p className="muted">None.</p>
            ) : (
              <MessageTable
                rows={h.lastErrors.inbound}
                isAdmin={me.role === 'admin'}
                busy={busy}
                shownId={shown?.id}
                onView={(m) => void view(m.id)}
                onReplay={setReplaying}
              />
            )}
          </section>
          <section className="card" aria-labelledby="h-find">
            <h2 id="h-find">Find an inbound message</h2>
            <form
              className="inline-form"
              onSubmit={(e) => {
                e.preventDefault();
                void find();
              }}
            >
              <label>
                Control id (MSH-10 or FHIR request id){' '}
                <input value={query} onChange={(e) => setQuery(e.target.value)} className="mono" />
              </label>{' '}
              <button type="submit" disabled={!query.trim()}>
                Find
              </button>
            </form>
            {found && (
              <div role="region" aria-label="Found messages">
                {found.length === 0 ? (
                  <p className="muted">No message with control id {lastQuery}.</p>
                ) : (
                  <MessageTable
                    rows={found}
                    isAdmin={me.role === 'admin'}
                    busy={busy}
                    shownId={shown?.id}
                    onView={(m) => void view(m.id)}
                    onReplay={setReplaying}
                  />
                )}
              </div>
            )}
          </section>
          {shown && (
            <section className="card" aria-label={`Message ${shown.controlId}`}>
              <h3>Message {shown.controlId} (patient masked)</h3>
              {shown.purgedAt ? (
                <p className="muted">Erased under the retention policy on {fmtTime(shown.purgedAt)}.</p>
              ) : (
                <pre className="mono small">{shown.rawMasked.replace(/\r/g, '\n')}</pre>
              )}
              {shown.ack && (
                <>
                  <h3>Our answer</h3>
                  <pre className="mono small">{shown.ack.replace(/\r/g, '\n')}</pre>
                </>
              )}
            </section>
          )}
          {replaying && (
            <ConfirmDialog
              title={`Replay message ${replaying.control_id}?`}
              body={
                replaying.channel === 'fhir'
                  ? "The ServiceRequest is read again from the EHR, as it is now, and taken in with today's settings (e.g. a test code mapped since): its order is made under this message. The EHR is not sent anything."
                  : "The stored message is read again with today's settings (e.g. a test code mapped since): the orders it asks for are made and its stored ACK is updated. The sender is not sent anything."
              }
              confirmLabel="Replay"
              onConfirm={() => void replay(replaying.id)}
              onClose={() => setReplaying(null)}
            />
          )}
        </>
      )}
    </section>
  );
}

/** Bytes as B, KiB, MiB or GiB with at most one decimal (`128 MiB`, `1.5 KiB`). */
function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let k = 0;
  while (n >= 1024 && k < units.length - 1) {
    n /= 1024;
    k++;
  }
  return `${Number(n.toFixed(1))} ${units[k]}`;
}
