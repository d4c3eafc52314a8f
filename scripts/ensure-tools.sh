#!/usr/bin/env bash
# Installs the system tools the test suite uses, when they are missing and this machine can install them:
# - promtool (Debian's `prometheus` package): the Prometheus exposition parser that Telemetry.test.ts runs, and the
#   rules checker and rule unit tests that MonitoringAssets.test.ts runs on monitoring/alerts.yml.
# - redis-server (Debian's `redis-server` package): the Redis tests (queue, shared stores) start their own server.
# It runs before the unit tests (`npm test`) and in CI, so a fresh clone needs no manual set-up.
set -u
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages) for the test suite..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null) ||
    echo "warning: could not install ${missing[*]}; the tests that need them will fail" >&2
else
  echo "warning: please install ${missing[*]} (apt-get install ${missing[*]}); the tests that need them will fail" >&2
fi
exit 0
