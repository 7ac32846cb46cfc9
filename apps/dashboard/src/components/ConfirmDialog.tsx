import { useEffect, useRef, useState } from 'react';

/** A modal confirmation (native <dialog>): says what will happen, optionally asks for a reason. */
export function ConfirmDialog(props: {
  title: string;
  body: string;
  confirmLabel: string;
  askReason?: boolean;
  danger?: boolean;
  onConfirm: (reason: string) => void;
  onClose: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [reason, setReason] = useState('');
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  return (
    <dialog ref={ref} className="dialog" aria-labelledby="confirm-title" onClose={props.onClose}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          props.onConfirm(reason.trim());
        }}
      >
        <h2 id="confirm-title">{props.title}</h2>
        <p>{props.body}</p>
        {props.askReason && (
          <label>
            Reason
            <input value={reason} onChange={(e) => setReason(e.target.value)} required maxLength={500} autoFocus />
          </label>
        )}
        <div className="dialog-buttons">
          <button type="button" className="secondary" onClick={props.onClose}>
            Back
          </button>
          <button type="submit" className={props.danger ? 'danger' : ''}>
            {props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
