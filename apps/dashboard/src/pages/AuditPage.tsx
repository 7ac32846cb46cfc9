import { useEffect, useState } from 'react';
import { api, fmtTime } from '../api';
import { linkProps } from '../router';

interface Entry {
  id: string;
  at: string;
  userEmail: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: string;
  detail: Record<string, unknown>;
  ip: string | null;
}

export function AuditPage() {
  const [items, setItems] = useState<Entry[]>([]);
  const [action, setAction] = useState('');
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ items: Entry[] }>(`/api/admin/audit?limit=200${action ? `&action=${encodeURIComponent(action)}` : ''}`).then(
      (r) => setItems(r.items),
      (err: unknown) => setError(err instanceof Error ? err.message : String(err)),
    );
  }, [action]);
  return (
    <section>
      <div className="page-head">
        <h1>Audit log</h1>
        <label className="inline">
          Action{' '}
          <select value={action} onChange={(e) => setAction(e.target.value)}>
            <option value="">all</option>
            {[
              'auth.login',
              'auth.lockout',
              'auth.logout',
              'order.view',
              'image.view',
              'inbound.view',
              'patient.reveal',
              'access.denied',
              'order.retry',
              'order.resend',
              'order.cancel',
              'inbound.replay',
            ].map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      <table className="audit">
        <thead>
          <tr>
            <th>When</th>
            <th>Who</th>
            <th>Action</th>
            <th>Target</th>
            <th>Outcome</th>
            <th>Detail</th>
            <th>From</th>
          </tr>
        </thead>
        <tbody>
          {items.map((e) => (
            <tr key={e.id}>
              <td className="nowrap">{fmtTime(e.at)}</td>
              <td>{e.userEmail}</td>
              <td className="mono">{e.action}</td>
              <td>
                {e.targetType === 'order' && e.targetId ? (
                  <a {...linkProps(`/orders/${e.targetId}`)}>order</a>
                ) : (
                  [e.targetType, e.targetId].filter(Boolean).join(' ')
                )}
              </td>
              <td className={e.outcome === 'ok' ? '' : 'error'}>{e.outcome}</td>
              <td className="detail">{Object.keys(e.detail).length ? <code>{JSON.stringify(e.detail)}</code> : ''}</td>
              <td className="mono small">{e.ip ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
