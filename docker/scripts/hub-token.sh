#!/bin/sh
# Entrypoint of the one-shot hub-init service (docker/compose.yml).
#
# SoftHSM2 stands in for the hub's HSM in this deployment. On the first run the
# token directory (a named volume) is empty: initialize the token named by the
# hub configuration (hsm.tokenLabel), with the user PIN from hsm.pinFile and
# the SO PIN from HUB_HSM_SO_PIN_FILE, both docker secrets. Then run the hub
# server, `keyhub-server` (node /app/hub/dist/main.js), with the given
# arguments: by default
#   init --admin-token-file $KEYHUB_ADMIN_DIR/admin.token
#        --ca-cert-out $KEYHUB_ADMIN_DIR/keyhub-ca.pem
# (KEYHUB_ADMIN_DIR defaults to /var/lib/keyhub/admin), which creates the
# master, signing and CA keys in the token, migrates the database, writes the
# hub CA certificate and, while no operator exists, creates the first admin
# and writes their token (mode 0600; the server refuses to overwrite a file).
# Every step is safe to repeat, so this script is too.
#
# softhsm2-util takes PINs only as arguments (it reads from a terminal
# otherwise), so they are visible in this container's process list for the
# second the command runs. A real HSM is initialized by its own ceremony,
# never by this script.
set -eu

log() { printf 'hub-token: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# The server's entry point (also /usr/local/bin/keyhub-server); the image's
# `keyhub` is the operators' client, which has no database or HSM access.
KEYHUB_SERVER_MAIN=/app/hub/dist/main.js
admin_dir="${KEYHUB_ADMIN_DIR:-/var/lib/keyhub/admin}"
[ "$#" -gt 0 ] || set -- init --admin-token-file "$admin_dir/admin.token" --ca-cert-out "$admin_dir/keyhub-ca.pem"

# The value of option $1 (`--opt value` or `--opt=value`) in the remaining
# arguments; empty when absent.
option_value() {
  name="$1"
  shift
  while [ "$#" -gt 0 ]; do
    case "$1" in
      "$name") printf '%s' "${2:-}"; return 0 ;;
      "$name"=*) printf '%s' "${1#*=}"; return 0 ;;
    esac
    shift
  done
}

# `init` writes the admin token and the CA certificate: fail here, before any
# key is made, when their directories cannot take them, and keep the token's
# directory to its owner.
if [ "$1" = init ]; then
  token_file="$(option_value --admin-token-file "$@")"
  ca_file="$(option_value --ca-cert-out "$@")"
  for f in "$token_file" "$ca_file"; do
    [ -n "$f" ] || continue
    d="$(dirname "$f")"
    { [ -d "$d" ] && [ -w "$d" ]; } || die "directory $d (for $f) is missing or not writable by uid $(id -u)"
  done
  if [ -n "$token_file" ]; then
    d="$(dirname "$token_file")"
    case "$(stat -c %a "$d")" in
      *00) ;;
      *) [ "$(stat -c %u "$d")" = "$(id -u)" ] || die "$d, where the admin token goes, is open to other users and not owned by uid $(id -u)"
         chmod 0700 "$d"
         log "made $d, where the admin token goes, private (mode 0700)" ;;
    esac
  fi
fi

: "${KEYHUB_CONFIG:?KEYHUB_CONFIG must name the hub configuration file}"
: "${SOFTHSM2_CONF:?SOFTHSM2_CONF must name the SoftHSM2 configuration file}"
[ -r "$KEYHUB_CONFIG" ] || die "cannot read the hub configuration $KEYHUB_CONFIG"

# Reads one dotted field of the JSON hub configuration; empty when absent.
config_field() {
  node -e '
    const config = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const value = process.argv[2].split(".").reduce((o, k) => (o == null ? undefined : o[k]), config);
    if (value !== undefined && value !== null) process.stdout.write(String(value));
  ' "$KEYHUB_CONFIG" "$1"
}

# Reads a secret file as the hub does: one trailing newline is dropped.
read_secret() {
  [ -r "$1" ] || die "cannot read $2 from $1 (is the docker secret mounted and readable by uid $(id -u)?)"
  value="$(cat "$1")"
  [ -n "$value" ] || die "$2 file $1 is empty"
  case "$value" in CHANGE-ME*) log "WARNING: $2 is still the example value from docker/secrets; generate real secrets before storing real keys" ;; esac
  printf '%s' "$value"
}

module="$(config_field hsm.module)"
label="$(config_field hsm.tokenLabel)"
pin_file="$(config_field hsm.pinFile)"
[ -n "$label" ] || die "hsm.tokenLabel is missing in $KEYHUB_CONFIG"
case "$module" in
  *softhsm*) ;;
  *) log "hsm.module is $module, not SoftHSM2: leaving token initialization to the HSM's own tools"
     exec node "$KEYHUB_SERVER_MAIN" "$@" ;;
esac

token_dir="$(sed -n 's/^[[:space:]]*directories\.tokendir[[:space:]]*=[[:space:]]*//p' "$SOFTHSM2_CONF" | tail -n 1)"
[ -n "$token_dir" ] || die "no directories.tokendir in $SOFTHSM2_CONF"
{ [ -d "$token_dir" ] && [ -w "$token_dir" ]; } || die "token directory $token_dir is missing or not writable by uid $(id -u)"

if [ -z "$(ls -A "$token_dir")" ]; then
  [ -n "$pin_file" ] || die "hsm.pinFile is missing in $KEYHUB_CONFIG"
  : "${HUB_HSM_SO_PIN_FILE:?HUB_HSM_SO_PIN_FILE must name the SO PIN secret file}"
  pin="$(read_secret "$pin_file" 'the hub token PIN')"
  so_pin="$(read_secret "$HUB_HSM_SO_PIN_FILE" 'the hub token SO PIN')"
  softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null
  unset pin so_pin
  log "initialized SoftHSM2 token '$label' in $token_dir"
elif softhsm2-util --show-slots | grep -Eq "^[[:space:]]*Label:[[:space:]]+${label}[[:space:]]*\$"; then
  log "SoftHSM2 token '$label' already present"
else
  die "$token_dir holds tokens, but none labelled '$label' (hsm.tokenLabel); refusing to touch them"
fi

exec node "$KEYHUB_SERVER_MAIN" "$@"
