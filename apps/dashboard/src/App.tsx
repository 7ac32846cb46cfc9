import { useCallback, useEffect, useState } from 'react';
import { api, setUnauthorizedHandler, type Me } from './api';
import { closeLive, useLiveStatus } from './live';
import { AuditPage } from './pages/AuditPage';
import { HealthPage } from './pages/HealthPage';
import { LoginPage } from './pages/LoginPage';
import { OrderPage } from './pages/OrderPage';
import { OrdersPage } from './pages/OrdersPage';
import { linkProps, navigate, useLocation } from './router';

export function App() {
  const { path, search } = useLocation();
  const [me, setMe] = useState<Me | null | undefined>(undefined);

  const toLogin = useCallback(() => {
    closeLive();
    setMe(null);
    const here = window.location.pathname.replace(/^\/admin/, '') || '/';
    if (!here.startsWith('/login')) navigate(`/login?next=${encodeURIComponent(here + window.location.search)}`, true);
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(toLogin);
    api<Me>('/api/admin/auth/me').then(setMe, () => setMe(null));
  }, [toLogin]);

  if (me === undefined) return <p className="loading">Loading…</p>;
  if (path.startsWith('/login') || me === null) {
    return (
      <LoginPage
        onSignedIn={(u) => {
          setMe(u);
          const next = search.get('next');
          if (next && next.startsWith('/api/docs')) window.location.assign(next);
          else navigate(next && next.startsWith('/') && !next.startsWith('/login') ? next : '/', true);
        }}
      />
    );
  }

  const orderMatch = /^\/orders\/([0-9a-f-]{36})$/.exec(path);
  let page: React.ReactNode;
  if (orderMatch) page = <OrderPage id={orderMatch[1]!} me={me} />;
  else if (path === '/health') page = <HealthPage me={me} />;
  else if (path === '/audit' && me.role === 'admin') page = <AuditPage />;
  else page = <OrdersPage />;

  return (
    <>
      <Header
        me={me}
        path={path}
        onSignOut={() => void api('/api/admin/auth/logout', { method: 'POST' }).finally(toLogin)}
      />
      <main>{page}</main>
    </>
  );
}

function Header({ me, path, onSignOut }: { me: Me; path: string; onSignOut: () => void }) {
  const live = useLiveStatus();
  const cls = (active: boolean) => (active ? 'nav-link active' : 'nav-link');
  return (
    <header className="topbar">
      <span className="brand">hemato-bridge</span>
      <nav aria-label="Main">
        <a className={cls(path === '/' || path.startsWith('/orders'))} {...linkProps('/')}>
          Orders
        </a>
        <a className={cls(path === '/health')} {...linkProps('/health')}>
          Health
        </a>
        {me.role === 'admin' && (
          <a className={cls(path === '/audit')} {...linkProps('/audit')}>
            Audit log
          </a>
        )}
        <a className="nav-link" href="/api/docs">
          API
        </a>
      </nav>
      <span className={live ? 'live on' : 'live'} title={live ? 'Live updates on' : 'Live updates reconnecting'}>
        {live ? '● live' : '○ offline'}
      </span>
      <span className="who">
        {me.email} <span className="role">{me.role}</span>
      </span>
      <button type="button" className="secondary" onClick={onSignOut}>
        Sign out
      </button>
    </header>
  );
}
