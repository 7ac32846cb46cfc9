import { useEffect, useState } from 'react';

/** A tiny history router: the app lives under /admin, paths below are ours. */
const BASE = '/admin';

export function currentPath(): string {
  const p = window.location.pathname;
  return p.startsWith(BASE) ? p.slice(BASE.length) || '/' : '/';
}

export function navigate(to: string, replace = false): void {
  const url = BASE + to;
  if (replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  window.dispatchEvent(new PopStateEvent('popstate'));
}

export function useLocation(): { path: string; search: URLSearchParams } {
  const [loc, setLoc] = useState(() => ({ path: currentPath(), search: new URLSearchParams(window.location.search) }));
  useEffect(() => {
    const on = () => setLoc({ path: currentPath(), search: new URLSearchParams(window.location.search) });
    window.addEventListener('popstate', on);
    return () => window.removeEventListener('popstate', on);
  }, []);
  return loc;
}

/** Props for an <a> that navigates inside the app without reloading (and still opens in a new tab). */
export function linkProps(to: string) {
  return {
    href: BASE + to,
    onClick: (e: React.MouseEvent) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      e.preventDefault();
      navigate(to);
    },
  };
}
