'use strict';
// Preloaded into every `node` process of the hub image (NODE_OPTIONS=--require),
// so that `keyhub serve`, the one-shot `keyhub init` and any operator command
// run with `docker compose exec` all see the same database URL.
//
// Why: compose keeps the PostgreSQL password in a secret file, never in the
// environment it shows (`docker inspect`, `docker compose config`). The hub
// reads KEYHUB_DATABASE_URL; this adds the password from
// KEYHUB_DATABASE_PASSWORD_FILE to that URL, in this process only, when the
// URL carries none. Without KEYHUB_DATABASE_PASSWORD_FILE it does nothing.
// Once the hub reads a password file itself, this file and the NODE_OPTIONS
// line in docker/hub.Dockerfile can go.

const { readFileSync } = require('node:fs');

function fail(message) {
  process.stderr.write(`keyhub image: ${message}\n`);
  // 2 = configuration problem, as the CLI's CONFIG_INVALID.
  process.exit(2);
}

// The same for the owner's URL (KEYHUB_OWNER_DATABASE_URL with
// KEYHUB_OWNER_DATABASE_PASSWORD_FILE), which only `keyhub init`/`migrate` get.
function addPassword(urlVar, fileVar) {
  const passwordFile = process.env[fileVar];
  const databaseUrl = process.env[urlVar];
  if (!passwordFile || !databaseUrl) return;
  let url;
  try {
    url = new URL(databaseUrl);
  } catch {
    fail(`${urlVar} is not a URL`);
  }
  if (url.password !== '') return;
  let password;
  try {
    // One trailing newline is what `echo` and editors leave; it is not part of the password.
    password = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    fail(`cannot read the database password from ${passwordFile} (${err && err.code ? err.code : 'error'}); is the secret mounted and readable by uid ${process.getuid ? process.getuid() : '?'}?`);
  }
  if (password === '') fail(`the database password file ${passwordFile} is empty`);
  // The URL setter leaves "%" alone, so encode first: any byte of the password survives the round trip.
  url.password = encodeURIComponent(password);
  process.env[urlVar] = url.href;
}

addPassword('KEYHUB_DATABASE_URL', 'KEYHUB_DATABASE_PASSWORD_FILE');
addPassword('KEYHUB_OWNER_DATABASE_URL', 'KEYHUB_OWNER_DATABASE_PASSWORD_FILE');
