// Shared set-up for tests that run real guests on real KVM.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_CODE, type Vcpu } from '../../lib';

/** Guest-physical address where test programs are loaded. */
export const CODE = GUEST_CODE;

/** A real-mode guest: 64 KiB of RAM at 0 with `code` at CODE, one vCPU at CODE (the library's shared fixture). */
export { realModeGuest, type TinyGuest as Guest } from '../../lib';

/** Open file descriptors of this process, to prove nothing leaks. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Runs until an exit other than `intr` (signals can interrupt a run). */
export function runToExit(vcpu: Vcpu) {
  for (;;) {
    const exit = vcpu.run();
    if (exit.reason !== 'intr') return exit;
  }
}

/** The error `f` throws; fails the test when it throws nothing. */
export function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error, got none');
}

/** The built library, as a child process `require`s it. */
export const LIB = JSON.stringify(join(__dirname, '../../dist/index.js'));

/**
 * Script text that defines `k` (the library) and `guest(code)`: a real-mode
 * vCPU about to run `code` at 0x1000, built from the library's own fixture.
 * For child processes and workers, where a crash or a hang must not take
 * the test runner with it.
 */
export const CHILD_GUEST = `
  const k = require(${LIB});
  function guest(code) {
    return k.realModeGuest(code).vcpu;
  }`;

/** Runs `script` in a child Node (with --expose-gc) and returns what it printed and how it ended. */
export function runNode(script: string, timeout = 60_000) {
  return spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout });
}
