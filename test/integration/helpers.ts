// Shared set-up for tests that run real guests on real KVM.
import { readdirSync } from 'node:fs';
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
