import { useEffect, useRef, useState } from 'react';

type Listener = (ids: string[]) => void;
const listeners = new Set<Listener>();
let source: EventSource | null = null;
let connected = false;
const statusListeners = new Set<(c: boolean) => void>();

function open(): void {
  if (source) return;
  source = new EventSource('/api/admin/events', { withCredentials: true });
  source.addEventListener('open', () => setConnected(true));
  source.addEventListener('error', () => setConnected(false));
  source.addEventListener('orders', (e) => {
    const ids = (JSON.parse((e as MessageEvent<string>).data) as { ids: string[] }).ids;
    for (const l of listeners) l(ids);
  });
}

function setConnected(c: boolean): void {
  connected = c;
  for (const l of statusListeners) l(c);
}

export function closeLive(): void {
  source?.close();
  source = null;
  setConnected(false);
}

/**
 * Calls `onChange` (at most every 300 ms) when orders change on the server; `filter` narrows to
 * the ids a page shows. One EventSource for the whole app.
 */
export function useOrderChanges(onChange: () => void, filter?: (ids: string[]) => boolean): void {
  const cb = useRef(onChange);
  const flt = useRef(filter);
  cb.current = onChange;
  flt.current = filter;
  useEffect(() => {
    open();
    let timer: number | undefined;
    const l: Listener = (ids) => {
      if (flt.current && !flt.current(ids)) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(() => cb.current(), 300);
    };
    listeners.add(l);
    return () => {
      listeners.delete(l);
      window.clearTimeout(timer);
    };
  }, []);
}

export function useLiveStatus(): boolean {
  const [c, setC] = useState(connected);
  useEffect(() => {
    // The header shows the status on every page (Health and Audit too), so it opens the stream itself.
    open();
    statusListeners.add(setC);
    return () => {
      statusListeners.delete(setC);
    };
  }, []);
  return c;
}
