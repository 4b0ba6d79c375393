#!/usr/bin/env node
'use strict';
// Plain CommonJS on purpose: this runs before (and independently of) the
// TypeScript build, and must work even when the build output is missing.
//
// Usage: node test/scripts/run-tests.js [filter ...]
//   A filter without glob characters matches as a substring of the path
//   relative to test/dist; with * ? or [ it is a glob matched against that
//   relative path or the file's basename. Several filters are OR-ed.
//   KEYHUB_TEST_TIMEOUT overrides the default per-test timeout (ms).
//   KEYHUB_TEST_JOBS: how many mocha processes share the files (default 2
//   for a whole run, 1 when filtered). Every test starts its own servers,
//   tokens and databases, and most of a run is spent waiting on them (timers,
//   processes, network round trips), so two processes on two cores cut the
//   wall time without changing what any test does. Each process's output is
//   printed whole when it ends, the longest-running first.

const fs = require('node:fs');
const path = require('node:path');

const repoRoot = path.resolve(__dirname, '..', '..');
const distDir = path.join(repoRoot, 'test', 'dist');
const setupFile = path.join(distDir, 'support', 'setup.js');

function listTestFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && entry.name.endsWith('.test.js')) out.push(full);
    }
  };
  walk(dir);
  return out.sort();
}

function globToRegExp(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        // "**/" also matches zero directories.
        if (glob[i + 2] === '/') {
          re += '(?:.*/)?';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else {
        re += '[^/]*';
      }
    } else if (ch === '?') {
      re += '[^/]';
    } else if (ch === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end === -1) re += '\\[';
      else {
        re += '[' + glob.slice(i + 1, end).replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else {
      re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
    }
  }
  return new RegExp('^' + re + '$');
}

function makeMatcher(filters) {
  if (filters.length === 0) return () => true;
  const tests = filters.map((f) => {
    const normalized = f.replace(/\\/g, '/');
    if (/[*?[]/.test(normalized)) {
      const re = globToRegExp(normalized);
      return (rel) => re.test(rel) || re.test(path.posix.basename(rel));
    }
    return (rel) => rel.includes(normalized);
  });
  return (rel) => tests.some((t) => t(rel));
}

function finish(stats, message) {
  const passed = stats.passes;
  const failed = stats.failures;
  const skipped = stats.pending;
  let code = failed > 0 ? 1 : 0;
  if (message === undefined && passed + failed === 0) {
    message = 'no tests ran (everything was skipped or filtered out)';
  }
  if (message !== undefined) {
    code = 1;
    process.stdout.write(`\n${message}\n`);
  }
  // This must be the last line of output: CI parses it.
  process.stdout.write(`${passed} passed, ${failed} failed, ${skipped} skipped\n`, () => process.exit(code));
}

/*
 * Rough wall time of a test file (s), for splitting a run into shards of
 * similar length: the long end-to-end and fault files by name (measured on
 * the 2-core machines), the rest by folder. A wrong guess only makes one
 * shard finish later.
 */
const WEIGHTS = [
  [/faults\/faults\.test/, 330],
  [/faults\/scale-out/, 110],
  [/e2e\/drift/, 120],
  [/e2e\/(decommission|root-kek-rotation)/, 75],
  [/e2e\/demo/, 70],
  [/e2e\/(audit-tamper|compromise|push|forged-input)/, 60],
  [/^e2e\//, 40],
  [/^faults\//, 60],
  [/integration\/(key-types-push|key-lifecycle|reports|nats-identities|outbox-relay)/, 35],
  [/^style\//, 40],
  [/^(integration|fuzz)\//, 15],
  [/./, 2],
];

function weightOf(file) {
  const rel = path.relative(distDir, file).split(path.sep).join('/');
  return WEIGHTS.find(([re]) => re.test(rel))[1];
}

/** Runs the files in `jobs` child processes (longest first, each to the least loaded shard) and sums their results. */
async function runShards(files, jobs) {
  const { spawn } = require('node:child_process');
  // The fuzz folder stays together: its last file checks the total the others threw.
  const units = new Map();
  for (const f of files) {
    const rel = path.relative(distDir, f).split(path.sep).join('/');
    const key = rel.startsWith('fuzz/') ? 'fuzz/' : rel;
    const unit = units.get(key) || { files: [], weight: 0 };
    unit.files.push(f);
    unit.weight += weightOf(f);
    units.set(key, unit);
  }
  const shards = Array.from({ length: jobs }, () => ({ files: [], weight: 0 }));
  for (const unit of [...units.values()].sort((a, b) => b.weight - a.weight)) {
    const least = shards.reduce((a, b) => (b.weight < a.weight ? b : a));
    least.files.push(...unit.files);
    least.weight += unit.weight;
  }
  const results = await Promise.all(
    shards
      .filter((sh) => sh.files.length > 0)
      .map(
        (sh, i) =>
          new Promise((resolve) => {
            const chunks = [];
            const child = spawn(process.execPath, [__filename], { env: { ...process.env, KEYHUB_TEST_SHARD: JSON.stringify(sh.files) }, stdio: ['ignore', 'pipe', 'pipe'] });
            child.stdout.on('data', (c) => chunks.push(c));
            child.stderr.on('data', (c) => chunks.push(c));
            child.on('close', (code) => {
              const out = Buffer.concat(chunks).toString('utf8');
              process.stdout.write(`\n===== test shard ${i + 1}/${jobs}: ${sh.files.length} files, exit ${code} =====\n${out}`);
              const last = /(\d+) passed, (\d+) failed, (\d+) skipped\s*$/.exec(out);
              resolve(last ? { passes: +last[1], failures: +last[2], pending: +last[3] } : { passes: 0, failures: 1, pending: 0, broken: true });
            });
          }),
      ),
  );
  const total = results.reduce((a, r) => ({ passes: a.passes + r.passes, failures: a.failures + r.failures, pending: a.pending + r.pending }), { passes: 0, failures: 0, pending: 0 });
  finish(total, results.some((r) => r.broken) ? 'a test shard ended without its summary line' : undefined);
}

async function loadSetup(mocha) {
  if (!fs.existsSync(setupFile)) return;
  const plugin = require(setupFile);
  let hooks = plugin.mochaHooks;
  if (typeof hooks === 'function') hooks = await hooks();
  if (hooks !== undefined) mocha.rootHooks(hooks);
  if (plugin.mochaGlobalSetup !== undefined) mocha.globalSetup(plugin.mochaGlobalSetup);
  if (plugin.mochaGlobalTeardown !== undefined) mocha.globalTeardown(plugin.mochaGlobalTeardown);
}

async function main() {
  const filters = process.argv.slice(2);
  const empty = { passes: 0, failures: 0, pending: 0 };

  if (!fs.existsSync(distDir)) {
    finish(empty, `test build output ${path.relative(repoRoot, distDir)} is missing; run "npx tsc -b" (or "npm test") first`);
    return;
  }
  const match = makeMatcher(filters);
  const all = listTestFiles(distDir);
  const shard = process.env.KEYHUB_TEST_SHARD ? new Set(JSON.parse(process.env.KEYHUB_TEST_SHARD)) : undefined;
  const files = all.filter((f) => (shard ? shard.has(f) : match(path.relative(distDir, f).split(path.sep).join('/'))));
  if (files.length === 0) {
    const what = filters.length > 0 ? `matching ${filters.map((f) => JSON.stringify(f)).join(' or ')}` : '';
    finish(empty, `no test files ${what} under ${path.relative(repoRoot, distDir)} (${all.length} *.test.js in total)`);
    return;
  }

  const jobs = Number(process.env.KEYHUB_TEST_JOBS) > 0 ? Math.floor(Number(process.env.KEYHUB_TEST_JOBS)) : filters.length === 0 ? 2 : 1;
  if (!process.env.KEYHUB_TEST_SHARD && jobs > 1 && files.length > 1) {
    await runShards(files, jobs);
    return;
  }

  const Mocha = require('mocha');
  const timeout = Number(process.env.KEYHUB_TEST_TIMEOUT) > 0 ? Number(process.env.KEYHUB_TEST_TIMEOUT) : 60000;
  const mocha = new Mocha({
    reporter: 'spec',
    timeout,
    // A stray .only committed by accident would silently skip the rest in CI.
    forbidOnly: Boolean(process.env.CI),
  });
  await loadSetup(mocha);
  for (const f of files) mocha.addFile(f);
  await mocha.loadFilesAsync();

  const runner = mocha.run(() => finish(runner.stats || empty));
}

main().catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : String(err)}\n`);
  finish({ passes: 0, failures: 1, pending: 0 }, 'test runner failed before tests could run');
});
