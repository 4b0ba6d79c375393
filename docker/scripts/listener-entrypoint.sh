#!/bin/sh
# Entrypoint of the listener services (docker/compose.yml): brings a site from
# nothing to a running agent, and on every later start goes straight to `run`.
#
#   1. SoftHSM2 token: initialized when the token directory (a volume) is empty.
#   2. `keyhub-listener init` when the listener home holds no configuration:
#      LISTENER_ID, HUB_FINGERPRINT (printed by hub-init; compare it out of
#      band) and KEYHUB_NATS_URL (comma-separated) come from the environment,
#      the PIN from the docker secret named by LISTENER_HSM_PIN_FILE.
#   3. `keyhub-listener enroll` when `keyhub-listener --json status` says the
#      listener is not enrolled, or when the request was never sent.
#   4. exec `keyhub-listener run` (or the arguments given).
#
# The enrollment fingerprint is printed on every start until the hub has
# approved the listener, so `docker compose logs <service>` always shows it.
set -eu

log() { printf 'listener-entrypoint: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

cli() { node /app/listener/dist/cli/main.js "$@"; }

# Reads a secret file as the listener does: one trailing newline is dropped.
read_secret() {
  [ -r "$1" ] || die "cannot read $2 from $1 (is the docker secret mounted and readable by uid $(id -u)?)"
  value="$(cat "$1")"
  [ -n "$value" ] || die "$2 file $1 is empty"
  case "$value" in CHANGE-ME*) log "WARNING: $2 is still the example value from docker/secrets; generate real secrets before storing real keys" ;; esac
  printf '%s' "$value"
}

# Prints one top-level field of a JSON document given on stdin; empty when absent.
json_field() {
  node -e '
    let text = "";
    process.stdin.setEncoding("utf8").on("data", (d) => (text += d)).on("end", () => {
      const value = JSON.parse(text)[process.argv[1]];
      if (value !== undefined && value !== null) process.stdout.write(String(value));
    });
  ' "$1"
}

: "${LISTENER_ID:?LISTENER_ID must be set (the listener id, e.g. site-a)}"
: "${KEYHUB_NATS_URL:?KEYHUB_NATS_URL must list the NATS servers, comma-separated}"
: "${LISTENER_HSM_PIN_FILE:?LISTENER_HSM_PIN_FILE must name the token PIN secret file}"
: "${SOFTHSM2_CONF:?SOFTHSM2_CONF must name the SoftHSM2 configuration file}"
home="${KEYHUB_LISTENER_HOME:?KEYHUB_LISTENER_HOME must name the listener state directory}"
module="${LISTENER_HSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
label="${LISTENER_TOKEN_LABEL:-$LISTENER_ID}"
marker="$home/.enrollment-sent"

# 1. The site's token.
case "$module" in
  *softhsm*)
    token_dir="$(sed -n 's/^[[:space:]]*directories\.tokendir[[:space:]]*=[[:space:]]*//p' "$SOFTHSM2_CONF" | tail -n 1)"
    [ -n "$token_dir" ] || die "no directories.tokendir in $SOFTHSM2_CONF"
    { [ -d "$token_dir" ] && [ -w "$token_dir" ]; } || die "token directory $token_dir is missing or not writable by uid $(id -u)"
    if [ -z "$(ls -A "$token_dir")" ]; then
      : "${LISTENER_HSM_SO_PIN_FILE:?LISTENER_HSM_SO_PIN_FILE must name the SO PIN secret file}"
      pin="$(read_secret "$LISTENER_HSM_PIN_FILE" 'the listener token PIN')"
      so_pin="$(read_secret "$LISTENER_HSM_SO_PIN_FILE" 'the listener token SO PIN')"
      softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null
      unset pin so_pin
      log "initialized SoftHSM2 token '$label' in $token_dir"
    elif ! softhsm2-util --show-slots | grep -Eq "^[[:space:]]*Label:[[:space:]]+${label}[[:space:]]*\$"; then
      die "$token_dir holds tokens, but none labelled '$label'; refusing to touch them"
    fi
    ;;
  *) log "HSM module $module is not SoftHSM2: the token '$label' must already exist" ;;
esac

# 2. Configuration, written once. The hub fingerprint is pinned then; a
#    different HUB_FINGERPRINT later is refused rather than silently ignored.
if [ ! -f "$home/listener.json" ]; then
  [ -n "${HUB_FINGERPRINT:-}" ] || die "HUB_FINGERPRINT is not set: read it from \`docker compose logs hub-init\`, compare it out of band, and set it (docker/README.md)"
  # NATS: the hub CA root (from the nats-auth volume) and the bootstrap credential of
  # `keyhub listener register <id> --out ...`, handed over as the docker secret named
  # by LISTENER_BOOTSTRAP_CREDS_FILE.
  nats_args=""
  [ -n "${LISTENER_NATS_CA_FILE:-}" ] && nats_args="--nats-ca $LISTENER_NATS_CA_FILE"
  if [ -n "${LISTENER_BOOTSTRAP_CREDS_FILE:-}" ]; then
    [ -r "$LISTENER_BOOTSTRAP_CREDS_FILE" ] || die "no bootstrap credential at $LISTENER_BOOTSTRAP_CREDS_FILE: run \`keyhub listener register $LISTENER_ID --out ...\` and mount it (docker/README.md)"
    nats_args="$nats_args --bootstrap-creds $LISTENER_BOOTSTRAP_CREDS_FILE"
  fi
  # shellcheck disable=SC2086 # nats_args holds whole, space-free paths
  cli init --id "$LISTENER_ID" --nats "$KEYHUB_NATS_URL" --hub-fingerprint "$HUB_FINGERPRINT" \
    --hsm-module "$module" --token-label "$label" --pin-file "$LISTENER_HSM_PIN_FILE" --target hsm $nats_args
else
  pinned="$(json_field hubFingerprint <"$home/listener.json")"
  if [ -n "${HUB_FINGERPRINT:-}" ] && [ "$pinned" != "$HUB_FINGERPRINT" ]; then
    die "HUB_FINGERPRINT ($HUB_FINGERPRINT) differs from the fingerprint pinned at install time ($pinned); a different hub key needs a new listener install"
  fi
fi

# 3. Enrollment. The status check fails (and the container restarts) while the
#    token or configuration is unusable; that is never taken as "not enrolled".
status="$(cli --json status)" || die "keyhub-listener status failed"
enrolled="$(printf '%s' "$status" | json_field enrolled)"
root_keks="$(printf '%s' "$status" | json_field rootKeks)"
# Enrolled keys alone do not prove the request reached the hub (the send may
# have failed after the keys were made), hence the marker; enroll reuses the keys.
if [ "$enrolled" != true ] || { [ ! -f "$marker" ] && [ "${root_keks:-0}" = 0 ]; }; then
  cli enroll
  : >"$marker"
  status="$(cli --json status)"
fi
if [ "${root_keks:-0}" = 0 ]; then
  log "listener $LISTENER_ID enrollment fingerprint: $(printf '%s' "$status" | json_field fingerprint)"
  log "waiting for approval: keyhub listener approve $LISTENER_ID --fingerprint <the fingerprint above, compared out of band>"
fi

# 4. The agent.
[ "$#" -gt 0 ] || set -- run
exec node /app/listener/dist/cli/main.js "$@"
