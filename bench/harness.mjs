// How every row of `npm run bench` is measured: C and node-kvm in
// alternating rounds of the same size, each side's median, their ratio.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
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
// up to 30% on an idle machine): many rounds, medians; about 50 s in all.
// Everything is slower under TCG, so the sandbox does fewer, shorter rounds.
export const ROUNDS = Math.round(envNumber('BENCH_ROUNDS', inSandbox ? 5 : 9));
export const ROUND_MS = envNumber('BENCH_ROUND_MS', inSandbox ? 150 : 250);

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
    const args = [mode, String(n), ...(code === undefined ? [] : [hex(code)])];
    return JSON.parse(execFileSync(join(root, `build/bench-${program}`), args, { encoding: 'utf8' })).us;
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Runs a row: `c(n)` and `js(n)` each do n operations and return
 * microseconds per operation. A short pass of each warms the JIT and sizes
 * each side's n so that its round takes about ROUND_MS (at least `min`
 * operations: each round builds a fresh guest, whose first KVM_RUN costs
 * more, up to 1 ms in the sandbox); one more JS round at that size is
 * thrown away (optimised code for the real loop); then ROUNDS rounds
 * alternate C and node-kvm, so that both see the same noise.
 */
export async function compare({ c, js, warmup, min = 50 }) {
  await js(warmup);
  const size = (us) => Math.max(min, Math.round((ROUND_MS * 1000) / us));
  const n = { js: size(await js(warmup)), c: size(c(warmup)) };
  await js(n.js);
  const cRounds = [];
  const jsRounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    cRounds.push(c(n.c));
    jsRounds.push(await js(n.js));
  }
  return { n, c: median(cRounds), js: median(jsRounds), cRounds, jsRounds };
}
