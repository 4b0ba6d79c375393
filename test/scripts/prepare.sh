#!/usr/bin/env bash
# Brings a machine with only node+npm up to what the tests need: system tools,
# a local PostgreSQL with the keyhub role (CREATEDB, CREATEROLE: it creates
# each test database and that database's service role), node_modules and a
# fresh build.
# Idempotent and silent when there is nothing to do; every action it takes is
# announced with a "[prepare]" line.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
for_tests=0
[ "${1:-}" = "--tests" ] && for_tests=1
PG_PORT=5432

say() { printf '[prepare] %s\n' "$*"; }
die() { printf '[prepare] ERROR: %s\n' "$*" >&2; exit 1; }
# `command -v` also reports non-executable files, so check the result.
have() {
  local p
  p="$(type -P "$1" 2>/dev/null)" && [ -f "$p" ] && [ -x "$p" ]
}

# sbin dirs hold nats-server and runuser but are absent from many users' PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif have sudo; then
  SUDO=(sudo)
else
  SUDO=(none)
fi

# Checked up front rather than inside as_root: as_root usually runs under
# quietly, which would swallow die's message.
require_root() {
  if [ "${SUDO[0]-}" = none ]; then die "need root (or sudo) to $*"; fi
}
as_root() { "${SUDO[@]}" "$@"; }

# Runs a command with its output captured, showing it only if it fails, so a
# successful run stays quiet.
quietly() {
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
}

postgres_server_installed() {
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

need_install=0
if [ ! -d "$ROOT/node_modules" ]; then
  need_install=1
elif [ -f "$ROOT/package-lock.json" ] && { [ ! -f "$ROOT/node_modules/.package-lock.json" ] ||
  [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; }; then
  need_install=1
fi

# ---------------------------------------------------------------- packages ---
missing=()
have softhsm2-util || missing+=(softhsm2)
have pkcs11-tool || missing+=(opensc)
have nats-server || missing+=(nats-server)
have openssl || missing+=(openssl)
{ have python3 && python3 -c 'import cryptography' >/dev/null 2>&1; } || missing+=(python3-cryptography)
# Independent checkers only the tests use (`prepare.sh --tests`, from `npm test`); the demo and the
# benchmark do without them.
if [ "$for_tests" -eq 1 ]; then
  # The keystore tests compile a small Java reader (javac) and list keystores with keytool.
  { have java && have keytool && have javac; } || missing+=(default-jdk-headless)
  # The dashboard's browser tests drive Debian's Chromium (playwright-core is pinned to its major; never `playwright install`).
  have chromium || missing+=(chromium)
  # The reports test reads the PDFs the hub renders with pdftotext.
  have pdftotext || missing+=(poppler-utils)
  # The key-component ceremony test types custodians' parts into a real terminal (tmux send-keys).
  have tmux || missing+=(tmux)
fi
# A remote database via DATABASE_URL makes a local server unnecessary.
if [ -z "${DATABASE_URL:-}" ] && ! postgres_server_installed; then
  missing+=(postgresql)
fi
# pkcs11js has no prebuilt binary; npm compiles it with node-gyp.
if [ "$need_install" -eq 1 ]; then
  { have make && have g++ && have python3; } || missing+=(make g++ python3)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  have apt-get || die "missing packages (${missing[*]}) and no apt-get here; install them manually"
  require_root "install ${missing[*]}"
  say "installing ${missing[*]}"
  quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# -------------------------------------------------------------- postgresql ---
pg_accepting() {
  if have pg_isready; then
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null
  fi
}

# Runs psql as the postgres OS user (peer auth over the Unix socket), from /
# so psql does not warn about an unreadable working directory.
psql_as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@")
  elif have sudo; then
    (cd / && sudo -u postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@")
  else
    die "cannot become the postgres user (no root, no sudo) to create the keyhub role"
  fi
}

start_local_postgres() {
  have pg_lsclusters || die "nothing listens on 127.0.0.1:$PG_PORT and Debian's postgresql-common is not installed; start PostgreSQL or set DATABASE_URL"
  require_root "start PostgreSQL (or set DATABASE_URL)"
  local ver name
  # Prefer whichever cluster is configured for our port.
  read -r ver name < <(pg_lsclusters -h | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }') || true
  if [ -z "${ver:-}" ]; then
    ver="$(basename "$(dirname "$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n 1)")")")"
    name=main
    if pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
      die "PostgreSQL cluster $ver/main exists but is not on port $PG_PORT; start PostgreSQL on 127.0.0.1:$PG_PORT or set DATABASE_URL"
    fi
    say "creating PostgreSQL cluster $ver/$name"
    quietly as_root pg_createcluster --port "$PG_PORT" "$ver" "$name"
  fi
  say "starting PostgreSQL cluster $ver/$name"
  quietly as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start
  local i
  for i in $(seq 1 60); do
    pg_accepting && return 0
    sleep 0.5
  done
  die "PostgreSQL $ver/$name did not accept connections on 127.0.0.1:$PG_PORT within 30 s"
}

# The keyhub role owns each test database and runs the migrations; every
# test database also gets a service role of its own (what `keyhub serve`
# connects as, with INSERT and SELECT only on the audit tables), which the
# keyhub role creates and drops: hence CREATEROLE. It is not a superuser;
# pg_signal_backend lets the fault suite terminate the hub's connections.
ensure_keyhub_role() {
  # Checking over TCP with the real credentials first keeps this a no-op (and
  # sudo-free) when the role is already usable.
  local rights
  rights="$(PGPASSWORD=keyhub PGCONNECT_TIMEOUT=5 psql -X -q -tA -h 127.0.0.1 -p "$PG_PORT" -U keyhub -d postgres \
    -c "SELECT rolcreatedb AND rolcreaterole AND NOT rolsuper AND pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') FROM pg_roles WHERE rolname = current_user" 2>/dev/null || true)"
  [ "$rights" = t ] && return 0
  say "creating PostgreSQL role keyhub (CREATEDB, CREATEROLE, pg_signal_backend)"
  psql_as_postgres -d postgres <<'SQL'
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'keyhub') THEN
    ALTER ROLE keyhub WITH LOGIN CREATEDB CREATEROLE NOSUPERUSER PASSWORD 'keyhub';
  ELSE
    CREATE ROLE keyhub WITH LOGIN CREATEDB CREATEROLE NOSUPERUSER PASSWORD 'keyhub';
  END IF;
END
$$;
-- The fault suite cuts the hub's connections (which run as a per-database service role).
GRANT pg_signal_backend TO keyhub;
SQL
}

if [ -z "${DATABASE_URL:-}" ]; then
  pg_accepting || start_local_postgres
  have psql || die "psql not found (package postgresql-client)"
  ensure_keyhub_role
fi

# --------------------------------------------------------------------- npm ---
if [ "$need_install" -eq 1 ]; then
  cd "$ROOT"
  if [ -f package-lock.json ]; then
    say "npm ci"
    quietly npm ci --no-audit --no-fund
  else
    say "npm install"
    quietly npm install --no-audit --no-fund
  fi
fi

# tsc -b is incremental and prints nothing on success, so it always runs.
cd "$ROOT"
[ -x node_modules/.bin/tsc ] || die "node_modules/.bin/tsc missing after npm install"
node_modules/.bin/tsc -b
