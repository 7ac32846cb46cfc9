export function StatusChip({ status }: { status: string }) {
  return <span className={`chip status-${status}`}>{status.replace(/_/g, ' ')}</span>;
}

export function ProgressBar({ value, label }: { value: number | null; label?: string }) {
  const pct = Math.round(Math.max(0, Math.min(1, value ?? 0)) * 100);
  return (
    <div
      className="progress"
      role="progressbar"
      aria-label={label ?? 'Hemato.AI progress'}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct}
    >
      <div className="progress-fill" style={{ width: `${pct}%` }} />
      <span className="progress-text">{pct}%</span>
    </div>
  );
}
