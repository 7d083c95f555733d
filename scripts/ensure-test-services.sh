#!/usr/bin/env sh
# Makes sure the servers the test suite starts are on this machine (the suite runs real InfluxDB,
# Mosquitto, PostgreSQL, HAProxy and Chromium, each on a free loopback port in a temp dir).
# Missing ones are installed from Debian's packages when this runs as root with apt-get; otherwise
# it stops at once with the exact command to run. Idempotent: nothing is fetched when all are here.
set -eu

missing=""
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have influxd || missing="$missing influxdb"
have mosquitto || missing="$missing mosquitto"
have haproxy || missing="$missing haproxy"
have chromium || missing="$missing chromium"
have openssl || missing="$missing openssl"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"

[ -z "$missing" ] && exit 0

install="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing the servers the tests need:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  exit 0
fi
echo "the tests need these Debian packages:$missing" >&2
echo "install them first (as root):  $install" >&2
exit 1
