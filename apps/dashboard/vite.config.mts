import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built to static files under dist/, served by the gateway at /admin (apps/gateway/src/admin/static).
export default defineConfig({
  root: import.meta.dirname,
  base: '/admin/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, target: 'es2022' },
  server: { proxy: { '/api': 'http://127.0.0.1:3000' } },
});
