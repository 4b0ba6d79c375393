#!/bin/bash
# Run once by the postgres image, when its data volume is created: the role
# `keyhub serve` connects as. It gets no attributes and no rights here;
# `keyhub-server init` (as the owner, keyhub) grants it what the service
# needs: INSERT and SELECT only on the audit tables. A volume created before
# this script existed has no such role: create it by hand (docker/README.md).
set -euo pipefail
password="$(cat "$KEYHUB_SERVICE_PASSWORD_FILE")"
[ -n "$password" ] || { echo "service-role.sh: $KEYHUB_SERVICE_PASSWORD_FILE is empty" >&2; exit 1; }
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v password="$password" <<'SQL'
CREATE ROLE keyhub_service LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SQL
