#!/bin/sh
# Entrypoint of the one-shot hub-init service (docker/compose.yml).
#
# SoftHSM2 stands in for the hub's HSM in this deployment. On the first run the
# token directory (a named volume) is empty: initialize the token named by the
# hub configuration (hsm.tokenLabel), with the user PIN from hsm.pinFile and
# the SO PIN from HUB_HSM_SO_PIN_FILE, both docker secrets. Then run the hub
# CLI with the given arguments (`init` by default), which creates the master
# and signing keys in the token and migrates the database; both steps are
# safe to repeat, so this script is too.
#
# softhsm2-util takes PINs only as arguments (it reads from a terminal
# otherwise), so they are visible in this container's process list for the
# second the command runs. A real HSM is initialized by its own ceremony,
# never by this script.
set -eu

log() { printf 'hub-token: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

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
     exec node /app/hub/dist/cli/main.js "$@" ;;
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

[ "$#" -gt 0 ] || set -- init
exec node /app/hub/dist/cli/main.js "$@"
