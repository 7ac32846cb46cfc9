import { useCallback, useEffect, useState } from 'react';
import { api, ApiError, fmtTime, lines, type Identity, type Me, type OrderDetail } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { SmearImage } from '../components/SmearImage';
import { ProgressBar, StatusChip } from '../components/StatusChip';
import { useOrderChanges } from '../live';
import { linkProps } from '../router';

const WORKING = new Set(['study_created', 'uploading', 'tasks_requested', 'processing']);
const TERMINAL = new Set(['completed', 'rejected', 'cancelled']);
/** Nothing of the order is at Hemato.AI yet: it can be held (as the server decides, see OrderHolds). */
const HOLDABLE = new Set(['received', 'awaiting_images', 'ready']);

// Replaying a refused inbound message is on the Health page: an order's own message was accepted.
type ActionName = 'retry' | 'resend' | 'hold' | 'release' | 'cancel';
const ACTIONS: Record<
  ActionName,
  { label: string; title: string; body: string; confirm: string; danger?: boolean; askReason?: boolean }
> = {
  retry: {
    label: 'Retry failed step',
    title: 'Retry the failed step?',
    body: 'The order goes back to the step that failed and the worker runs it again.',
    confirm: 'Retry',
  },
  resend: {
    label: 'Resend result',
    title: 'Resend the result?',
    body: 'The latest report is delivered again to every target (HL7 ORU and/or FHIR).',
    confirm: 'Resend',
  },
  hold: {
    label: 'Hold order',
    title: 'Put this order on hold?',
    body: 'Nothing is sent to Hemato.AI until the order is released. Images can still be added.',
    confirm: 'Hold',
    askReason: true,
  },
  release: {
    label: 'Release hold',
    title: 'Release this order?',
    body: 'The order goes on from its first step: images still pending are fetched, then it is sent to Hemato.AI.',
    confirm: 'Release',
  },
  cancel: {
    label: 'Cancel order',
    title: 'Cancel this order?',
    body: 'The order stops here and will not be processed further. This cannot be undone.',
    confirm: 'Cancel order',
    danger: true,
    askReason: true,
  },
};

export function OrderPage({ id, me }: { id: string; me: Me }) {
  const [d, setD] = useState<OrderDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState<number | undefined>(undefined);
  const [revealed, setRevealed] = useState<{ identity: Identity | null; rawInbound: string | null } | null>(null);
  const [confirm, setConfirm] = useState<ActionName | 'reveal' | null>(null);
  const [outcome, setOutcome] = useState<{ ok: boolean; message: string } | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      setD(await api<OrderDetail>(`/api/admin/orders/${id}${version ? `?reportVersion=${version}` : ''}`));
      setError(null);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }, [id, version]);
  useEffect(() => {
    void load();
  }, [load]);
  useOrderChanges(
    () => void load(),
    (ids) => ids.includes(id),
  );

  const act = async (name: ActionName | 'reveal', reason: string) => {
    setConfirm(null);
    setBusy(true);
    setOutcome(null);
    try {
      if (name === 'reveal') {
        setRevealed(await api(`/api/admin/orders/${id}/reveal`, { method: 'POST' }));
      } else {
        const path = `/api/admin/orders/${id}/actions/${name}`;
        const r = await api<{ ok: boolean; message: string }>(path, {
          method: 'POST',
          json: name === 'cancel' || name === 'hold' ? { reason } : {},
        });
        setOutcome(r);
        void load();
      }
    } catch (err) {
      setOutcome({ ok: false, message: err instanceof ApiError ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };

  if (error && !d)
    return (
      <p role="alert" className="error">
        {error}
      </p>
    );
  if (!d) return <p className="loading">Loading…</p>;
  const o = d.order;
  const results = d.report?.results;
  const findings = Object.keys(results?.morphological_findings ?? {});
  const isAdmin = me.role === 'admin';
  const available: ActionName[] = [];
  if (o.status === 'failed') available.push('retry');
  if (d.report) available.push('resend');
  if (HOLDABLE.has(o.status as string)) available.push('hold');
  if (o.status === 'on_hold') available.push('release');
  if (!TERMINAL.has(o.status as string)) available.push('cancel');

  return (
    <article className="order">
      <p>
        <a {...linkProps('/')}>← Orders</a>
      </p>
      <div className="page-head">
        <h1>
          Order <span className="mono">{o.filler_order_number}</span>
        </h1>
        <StatusChip status={o.status as string} />
      </div>
      {WORKING.has(o.status as string) && (
        <div className="working">
          <ProgressBar value={(o.hemato_progress as number | null) ?? 0} />
          {o.hemato_user_message && <span className="muted">{o.hemato_user_message as string}</span>}
        </div>
      )}
      {o.status === 'on_hold' && (
        <p className="muted" role="note">
          On hold: nothing is sent to Hemato.AI until the order is released.
        </p>
      )}
      {o.status === 'failed' && (
        <p className="error" role="note">
          Failed{o.failed_step ? ` at ${o.failed_step as string}` : ''}:{' '}
          {(o.failure_reason as string) ?? 'no reason recorded'}
        </p>
      )}

      <div className="grid2">
        <section className="card">
          <h2>Order</h2>
          <dl className="facts">
            <dt>Placer no.</dt>
            <dd className="mono">{(o.placer_order_number as string) ?? '—'}</dd>
            <dt>Channel</dt>
            <dd>{o.source_channel as string}</dd>
            <dt>Test</dt>
            <dd>
              {(o.test_display as string) ?? '—'}{' '}
              <span className="muted mono">{[o.test_system, o.test_code].filter(Boolean).join('|')}</span>
            </dd>
            <dt>Tasks</dt>
            <dd className="mono">{((o.tasks as string[]) ?? []).join(', ') || '—'}</dd>
            <dt>Hemato.AI study</dt>
            <dd className="mono">{(o.hemato_study_id as string) ?? '—'}</dd>
            <dt>Created</dt>
            <dd>{fmtTime(o.created_at as string)}</dd>
            <dt>Last change</dt>
            <dd>{fmtTime(o.status_changed_at as string)}</dd>
          </dl>
        </section>
        <section className="card" aria-labelledby="patient-title">
          <h2 id="patient-title">Patient</h2>
          <dl className="facts">
            <dt>Proxy id</dt>
            <dd className="mono">{(o.proxy_id as string) ?? '—'}</dd>
            {d.patient && !revealed?.identity && (
              <>
                <dt>Name</dt>
                <dd className="masked" data-testid="patient-name">
                  {d.patient.name}
                </dd>
                <dt>Identifiers</dt>
                <dd className="masked">{d.patient.identifiers}</dd>
                <dt>Birth date</dt>
                <dd className="masked">{d.patient.birthDate}</dd>
              </>
            )}
            {revealed?.identity && <RevealedIdentity identity={revealed.identity} />}
          </dl>
          {!d.patient && o.purged_at && (
            <p className="muted" data-testid="patient-erased">
              Identity erased under the retention policy (order purged {fmtTime(o.purged_at as string)}).
            </p>
          )}
          {isAdmin && d.patient && !revealed && (
            <button type="button" className="secondary" onClick={() => setConfirm('reveal')} disabled={busy}>
              Reveal patient
            </button>
          )}
          {!isAdmin && d.patient && <p className="muted small">Only an admin can reveal the patient's identity.</p>}
        </section>
      </div>

      {isAdmin && (
        <section className="card actions" aria-labelledby="actions-title">
          <h2 id="actions-title">Actions</h2>
          <div className="action-buttons">
            {available.map((a) => (
              <button
                type="button"
                key={a}
                className={ACTIONS[a].danger ? 'danger' : ''}
                disabled={busy}
                onClick={() => setConfirm(a)}
              >
                {ACTIONS[a].label}
              </button>
            ))}
            {available.length === 0 && <span className="muted">No action applies to this order now.</span>}
          </div>
          {outcome && (
            <p role="status" className={outcome.ok ? 'ok' : 'error'}>
              {outcome.message}
            </p>
          )}
        </section>
      )}
      {confirm === 'reveal' && (
        <ConfirmDialog
          title="Reveal the patient's identity?"
          body="Name, identifiers and the raw message will be shown. The reveal is written to the audit log with your name."
          confirmLabel="Reveal"
          onConfirm={(r) => void act('reveal', r)}
          onClose={() => setConfirm(null)}
        />
      )}
      {confirm && confirm !== 'reveal' && (
        <ConfirmDialog
          title={ACTIONS[confirm].title}
          body={ACTIONS[confirm].body}
          confirmLabel={ACTIONS[confirm].confirm}
          danger={ACTIONS[confirm].danger}
          askReason={ACTIONS[confirm].askReason}
          onConfirm={(r) => void act(confirm, r)}
          onClose={() => setConfirm(null)}
        />
      )}

      <section className="card" aria-labelledby="timeline-title">
        <h2 id="timeline-title">Timeline</h2>
        <table className="timeline">
          <thead>
            <tr>
              <th>Time</th>
              <th>Event</th>
              <th>Status</th>
              <th>By</th>
              <th>Detail</th>
            </tr>
          </thead>
          <tbody>
            {d.timeline.map((e) => (
              <tr key={e.id}>
                <td className="nowrap">{fmtTime(e.at)}</td>
                <td>{e.type.replace(/_/g, ' ')}</td>
                <td>
                  {e.from_status && <StatusChip status={e.from_status} />}
                  {e.from_status && e.to_status && ' → '}
                  {e.to_status && <StatusChip status={e.to_status} />}
                </td>
                <td>{e.actor}</td>
                <td className="detail">{eventDetail(e)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section className="card" aria-labelledby="images-title">
        <h2 id="images-title">Images</h2>
        <div className="images">
          {d.images.map((img) =>
            img.status === 'stored' ? (
              <SmearImage key={img.id} url={img.url} name={img.name} spots={img.spots} findings={findings} />
            ) : (
              <div key={img.id} className="smear missing">
                {img.name}: {img.status}
                {img.error ? ` (${img.error})` : ''}
              </div>
            ),
          )}
          {d.images.length === 0 && <p className="muted">No images yet.</p>}
        </div>
        {findings.length > 0 && d.images.some((i) => i.spots.length > 0) && (
          <p className="legend">
            {findings.map((f, i) => (
              <span key={f} className={`legend-item c${i % 6}`}>
                ◯ {f}
              </span>
            ))}
          </p>
        )}
      </section>

      <section className="card" aria-labelledby="report-title">
        <div className="page-head">
          <h2 id="report-title">Report</h2>
          {d.reportVersions.length > 1 && (
            <label className="inline">
              Version{' '}
              <select value={d.report?.version} onChange={(e) => setVersion(Number(e.target.value))}>
                {d.reportVersions.map((v) => (
                  <option key={v} value={v}>
                    {v}
                  </option>
                ))}
              </select>
            </label>
          )}
        </div>
        {!results && <p className="muted">No report yet.</p>}
        {results && (
          <>
            <p className="muted small">
              Version {d.report!.version} · study <span className="mono">{d.report!.studyId}</span> · fetched{' '}
              {fmtTime(d.report!.fetchedAt)}
            </p>
            <h3>Differential diagnosis</h3>
            <table className="diagnoses">
              <thead>
                <tr>
                  <th>ICD-10</th>
                  <th>Diagnosis</th>
                  <th>Confidence</th>
                  <th>Score</th>
                  <th>Significance</th>
                </tr>
              </thead>
              <tbody>
                {(results.diagnostic_report?.differential_diagnosis ?? []).map((dx, i) => (
                  <tr key={i}>
                    <td className="mono icd10">{dx['icd10-code']}</td>
                    <td>{dx['english-long'] ?? dx['english-short'] ?? '—'}</td>
                    <td>
                      <Confidence value={Number(dx.confidence)} />
                    </td>
                    <td>{String(dx.score)}</td>
                    <td>{dx['clinical-significance'] ?? ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <div className="grid2">
              <div>
                <h3>Feature statistics</h3>
                <table>
                  <tbody>
                    {Object.entries(results.feature_statistics ?? {}).map(([k, v]) => (
                      <tr key={k}>
                        <th scope="row">{k.replace(/_/g, ' ')}</th>
                        <td>
                          {String(v.value)} <span className="muted">{v.unit}</span>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <div>
                <h3>Morphological findings</h3>
                <table>
                  <thead>
                    <tr>
                      <th>Finding</th>
                      <th>Count</th>
                      <th>Spots</th>
                    </tr>
                  </thead>
                  <tbody>
                    {Object.entries(results.morphological_findings ?? {}).map(([k, v], i) => (
                      <tr key={k}>
                        <th scope="row">
                          <span className={`legend-item c${i % 6}`}>◯</span> {k.replace(/_/g, ' ')}
                        </th>
                        <td>{String(v.count)}</td>
                        <td>{Array.isArray(v.heat_map) ? v.heat_map.length : 0}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </div>
            <h3>Pathology report</h3>
            <p className="pathology">{results.pathology_report ?? '—'}</p>
          </>
        )}
      </section>

      <section className="card" aria-labelledby="deliveries-title">
        <h2 id="deliveries-title">Deliveries</h2>
        {d.deliveries.length === 0 && <p className="muted">Nothing delivered yet.</p>}
        {d.deliveries.map((dl) => (
          <div key={dl.id} className="delivery" data-delivery-target={dl.target}>
            <div className="delivery-head">
              <strong>{dl.target === 'hl7' ? 'HL7 ORU^R01' : 'FHIR DiagnosticReport'}</strong>{' '}
              <StatusChip status={dl.status} />
              <span className="muted">
                report v{dl.report_version} · {dl.attempts} attempt{dl.attempts === 1 ? '' : 's'} · last{' '}
                {fmtTime(dl.last_attempt_at)}
                {dl.outcome ? ` · outcome ${dl.outcome}` : ''}
                {dl.control_id ? ` · id ${dl.control_id}` : ''}
                {dl.destination ? ` · to ${dl.destination}` : ''}
              </span>
            </div>
            {dl.error && <p className="error small">{dl.error}</p>}
            {dl.response && (
              <details>
                <summary>{dl.target === 'hl7' ? 'ACK' : 'OperationOutcome / response'}</summary>
                <pre>{lines(dl.response)}</pre>
              </details>
            )}
          </div>
        ))}
      </section>

      <section className="card" aria-labelledby="inbound-title">
        <h2 id="inbound-title">Inbound message</h2>
        {!d.inbound && <p className="muted">No inbound message recorded for this order.</p>}
        {d.inbound && (
          <>
            <p className="muted small">
              {d.inbound.channel} {d.inbound.message_type ?? ''} from <span className="mono">{d.inbound.sender}</span> ·
              control id <span className="mono">{d.inbound.control_id}</span> · received{' '}
              {fmtTime(d.inbound.received_at)} · {d.inbound.status}
              {d.inbound.ack_code ? ` · answered ${d.inbound.ack_code}` : ''}
            </p>
            {d.inbound.purged_at ? (
              <p className="muted" data-testid="inbound-erased">
                Erased under the retention policy on {fmtTime(d.inbound.purged_at)}.
              </p>
            ) : (
              <pre className="raw" data-testid="inbound-raw">
                {lines(revealed?.rawInbound ?? d.inbound.rawMasked)}
              </pre>
            )}
            {!revealed && !d.inbound.purged_at && (
              <p className="muted small">
                Patient fields are masked{isAdmin ? ': use “Reveal patient” above to see them.' : '.'}
              </p>
            )}
            {d.inbound.ack && (
              <details>
                <summary>Our acknowledgement</summary>
                <pre>{lines(d.inbound.ack)}</pre>
              </details>
            )}
          </>
        )}
      </section>
    </article>
  );
}

function Confidence({ value }: { value: number }) {
  const pct = Number.isFinite(value) ? Math.round((value <= 1 ? value * 100 : value) * 10) / 10 : null;
  return pct === null ? <>—</> : <span className="confidence">{pct}%</span>;
}

function RevealedIdentity({ identity }: { identity: Identity }) {
  const name =
    identity.name?.text ?? [identity.name?.given?.join(' '), identity.name?.family].filter(Boolean).join(' ');
  return (
    <>
      <dt>Name</dt>
      <dd data-testid="patient-name">{name || '—'}</dd>
      <dt>Identifiers</dt>
      <dd className="mono">
        {(identity.identifiers ?? (identity.primary ? [identity.primary] : [])).map((i, n) => (
          <div key={n}>
            {i.value} {i.authority ? <span className="muted">({i.authority})</span> : null}
          </div>
        ))}
      </dd>
      <dt>Birth date</dt>
      <dd>{identity.birthDate ?? '—'}</dd>
      <dt>Sex</dt>
      <dd>{identity.sex ?? '—'}</dd>
    </>
  );
}

/**
 * A timeline line's detail: a failed try of a step in words (what an admin reads while an order waits out
 * Hemato.AI's trouble), anything else as its JSON.
 */
function eventDetail(e: OrderDetail['timeline'][number]) {
  const d = e.detail ?? {};
  if (e.type === 'step_retry') {
    const next =
      typeof d.nextTryInMs === 'number' ? `; next try in ${Math.max(1, Math.round(d.nextTryInMs / 1000))} s` : '';
    return `${String(d.step)}: try ${String(d.attempt)} of ${String(d.attempts)} failed: ${String(d.reason)}${next}`;
  }
  return Object.keys(d).length ? <code>{JSON.stringify(d)}</code> : '';
}
