// How every row of `npm run bench` is measured: C and node-kvm in
// alternating rounds of the same size, each side's median, their ratio.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { hex } from './guests.mjs';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const lib = createRequire(import.meta.url)(join(root, 'dist/index.js'));
export const inSandbox = Boolean(process.env.NODE_KVM_IN_SANDBOX);

function envNumber(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!(n > 0)) throw new Error(`${name} must be a positive number, not ${JSON.stringify(v)}`);
  return n;
}

// The host has 2 cores and noisy neighbours (rounds of one figure differ by
// up to 30% on an idle machine, drifting over seconds): many short rounds,
// each node-kvm round compared with the C round just before it; about 50 s
// in all. Everything is slower under TCG: fewer, longer rounds there.
export const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', inSandbox ? 5 : 21));
export const ROUND_MS = envNumber('BENCH_ROUND_MS', inSandbox ? 150 : 100);

/** Microseconds since `t0` (a `process.hrtime.bigint()`). */
export const usSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e3;
export const now = () => process.hrtime.bigint();

/** Throws unless got === want: a benchmark that did less work must not report a time. */
export function check(what, got, want) {
  if (got !== want) throw new Error(`${what}: got ${got}, expected ${want}`);
}

export function unexpected(exit) {
  return new Error(`unexpected exit: ${inspect(exit, { depth: 1 })}`);
}

/**
 * The C side of a row: `build/bench-<program> <mode> <n> [code]`, which
 * checks its own result and prints microseconds per operation.
 */
export function cProgram(program, mode, code) {
  return (n) => {
    const args = [join(root, `build/bench-${program}`), mode, String(n), ...(code === undefined ? [] : [hex(code)])];
    const [file, ...rest] = pinnedCpu === undefined ? args : ['taskset', '-c', String(pinnedCpu), ...args];
    return JSON.parse(execFileSync(file, rest, { encoding: 'utf8' })).us;
  };
}

// The CPU both sides of a row run on, when pinned (see compare()).
let pinnedCpu;

// Sets the affinity of this process's main thread only (its TID is the
// PID; taskset -p without -a leaves the other threads alone). False where
// taskset is missing.
function pinMainThread(list) {
  try {
    execFileSync('taskset', ['-p', '-c', list, String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// This thread's CPU list as taskset prints it ("0,1"), or undefined.
function affinity() {
  try {
    return execFileSync('taskset', ['-p', '-c', String(process.pid)], { encoding: 'utf8' }).split(':').pop().trim();
  } catch {
    return undefined;
  }
}

// The CPU this thread last ran on: field 39 of /proc/self/stat.
function currentCpu() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[36]);
}

// The q-quantile of xs, interpolated between neighbours.
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * q;
  const lo = Math.floor(at);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (at - lo);
};
export const median = (xs) => quantile(xs, 0.5);

/** A turn of the event loop. */
export const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs a row: `c(n)` and `js(n)` each do n operations and return
 * microseconds per operation. A short pass of each warms the JIT and sizes
 * each side's n so that its round takes about ROUND_MS (at least `min`
 * operations: each round builds a fresh guest, whose first KVM_RUN costs
 * more, up to 1 ms in the sandbox); one more JS round at that size is
 * thrown away (optimised code for the real loop); then ROUNDS rounds
 * alternate C and node-kvm, so that both see the same noise. The ratio is
 * the median of each round's node-kvm / C (a pair run back to back shares
 * the machine's state of the moment), with its quartiles as the spread.
 */
export async function compare({ c, js, warmup, min = 50, pin = true }) {
  // Both sides on one CPU, where node-kvm runs on this thread: this host's
  // two vCPUs differ in speed from moment to moment, and a pair of rounds
  // on different ones compares the CPUs. Rows whose node-kvm side runs on
  // another thread (runAsync(), a Worker), or on every CPU (a VM's life),
  // say `pin: false`.
  const before = pin && cpus().length > 1 ? affinity() : undefined;
  if (before !== undefined) {
    const cpu = currentCpu();
    if (pinMainThread(String(cpu))) pinnedCpu = cpu;
  }
  try {
    return { ...(await rounds({ c, js, warmup, min })), pinned: pinnedCpu };
  } finally {
    if (pinnedCpu !== undefined) pinMainThread(before);
    pinnedCpu = undefined;
  }
}

async function rounds({ c, js, warmup, min }) {
  await js(warmup);
  const size = (us) => Math.max(min, Math.round((ROUND_MS * 1000) / us));
  const n = { js: size(await js(warmup)), c: size(c(warmup)) };
  await js(n.js);
  const cRounds = [];
  const jsRounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    cRounds.push(c(n.c));
    // A turn of the event loop, as a program has between bursts: buffers'
    // finalizers run there (unmapping closed memory), as the C program's
    // memory goes when it exits.
    await turn();
    jsRounds.push(await js(n.js));
  }
  const ratios = jsRounds.map((js, i) => js / cRounds[i]);
  return {
    n,
    c: median(cRounds),
    js: median(jsRounds),
    ratio: median(ratios),
    spread: [quantile(ratios, 0.25), quantile(ratios, 0.75)],
    cRounds,
    jsRounds,
  };
}
