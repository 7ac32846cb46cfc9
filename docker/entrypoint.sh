#!/bin/sh
# Starts one hemato-bridge process by name; `migrate` applies the database migrations and exits.
set -e
case "${1:-gateway}" in
  gateway) exec node dist/apps/gateway/src/main.js ;;
  worker) exec node dist/apps/worker/src/main.js ;;
  sandbox) exec node dist/apps/hemato-sandbox/src/main.js ;;
  all-in-one) exec node dist/apps/all-in-one/src/main.js ;;
  migrate) exec node dist/libs/persistence/src/cli/migrate.js run ;;
  *) exec "$@" ;;
esac
