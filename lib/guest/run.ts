// The run policy: run a vCPU until it halts, handing I/O, MMIO and debug
// exits to handlers; the decision per exit is a pure function
// (handleExit), testable with synthetic exits.
import { constants as osConstants } from 'node:os';
import { KvmError } from '../core/errors';
import type { DebugExit, IoExit, MmioExit, VmExit } from '../core/exits';
import { own, validateFunction, validateInstance, validateObject, validateOptions, validateString } from '../core/validate';
import { abortSignal, runTimeout, Vcpu, type RunAsyncOptions, type RunOptions } from '../core/vcpu';
import { guestError } from './report';

/** Handlers for {@link runUntilHalt}; an exit with no handler is an error. */
export interface RunHandlers {
  io?(exit: IoExit): void;
  mmio?(exit: MmioExit): void;
  debug?(exit: DebugExit): void;
}

/** Handlers for {@link runUntilHaltAsync}: like {@link RunHandlers}, and they may return promises. */
export interface AsyncRunHandlers {
  io?(exit: IoExit): void | Promise<void>;
  mmio?(exit: MmioExit): void | Promise<void>;
  debug?(exit: DebugExit): void | Promise<void>;
}

/** What to do after an exit: see {@link handleExit}. */
export type ExitAction<H> = { action: 'halt' } | { action: 'again' } | { action: 'handle'; handler: H } | { action: 'fail'; why?: string };

/**
 * What {@link runUntilHalt} does with an exit: stop at `hlt`, run again
 * after `intr`, hand io/mmio/debug exits to their handler, and fail on an
 * exit without one or any other exit.
 */
export function handleExit<H extends RunHandlers | AsyncRunHandlers>(
  exit: VmExit,
  handlers: H,
): ExitAction<(e: VmExit) => void | Promise<void>> {
  validateString(validateObject(exit, 'exit').reason, 'exit.reason');
  return decide(exit, validateHandlers(handlers));
}

// handleExit without the checks, for the run loops (their arguments were checked once).
function decide(exit: VmExit, handlers: RunHandlers | AsyncRunHandlers): ExitAction<(e: VmExit) => void | Promise<void>> {
  switch (exit.reason) {
    case 'hlt':
      return { action: 'halt' };
    case 'intr':
      return { action: 'again' };
    case 'io':
    case 'mmio':
    case 'debug': {
      const handler = handlers[exit.reason] as ((e: VmExit) => void | Promise<void>) | undefined;
      return handler ? { action: 'handle', handler } : { action: 'fail', why: `unhandled ${exit.reason} exit` };
    }
    default:
      return { action: 'fail' };
  }
}

/**
 * Runs `vcpu` until the guest halts, passing I/O, MMIO and debug exits to
 * the handlers (`intr` exits just run again). Any other exit, or one with
 * no handler, throws a {@link GuestError} whose message names the exit, the
 * mode, rip, the control registers and the code at rip, disassembled.
 * Past `timeoutMs` it throws a `KvmError` with code `ETIMEDOUT` (the guest
 * can be run on). Returns the number of exits handled.
 */
export function runUntilHalt(vcpu: Vcpu, handlers: RunHandlers = {}, options: RunOptions = {}): number {
  validateInstance(vcpu, 'vcpu', Vcpu);
  validateHandlers(handlers);
  const timeoutMs = runTimeout(validateOptions(options, 'options', ['timeoutMs']));
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  for (let count = 0; ; count++) {
    const exit = vcpu.run(deadline === Infinity ? undefined : { timeoutMs: Math.max(0, deadline - Date.now()) });
    if (exit.reason === 'intr' && Date.now() >= deadline) throw timedOut(timeoutMs);
    const next = decide(exit, handlers);
    if (next.action === 'halt') return count;
    if (next.action === 'fail') throw guestError(vcpu, exit, next.why);
    if (next.action === 'handle') void next.handler(exit);
  }
}

/**
 * {@link runUntilHalt} on the vCPU's own thread, with the event loop free:
 * handlers may return promises, which are awaited. An aborted `signal`
 * rejects with its reason, `timeoutMs` with `ETIMEDOUT`.
 */
export async function runUntilHaltAsync(vcpu: Vcpu, handlers: AsyncRunHandlers = {}, options: RunAsyncOptions = {}): Promise<number> {
  validateInstance(vcpu, 'vcpu', Vcpu);
  validateHandlers(handlers);
  const o = validateOptions(options, 'options', ['timeoutMs', 'signal']);
  const timeoutMs = runTimeout(o);
  const signal = abortSignal(o);
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  for (let count = 0; ; count++) {
    signal?.throwIfAborted();
    const exit = await vcpu.runAsync({
      ...(deadline === Infinity ? {} : { timeoutMs: Math.max(0, deadline - Date.now()) }),
      ...(signal ? { signal } : {}),
    });
    if (exit.reason === 'intr') {
      signal?.throwIfAborted();
      if (Date.now() >= deadline) throw timedOut(timeoutMs);
    }
    const next = decide(exit, handlers);
    if (next.action === 'halt') return count;
    if (next.action === 'fail') throw guestError(vcpu, exit, next.why);
    if (next.action === 'handle') await next.handler(exit);
  }
}

function validateHandlers(handlers: unknown): RunHandlers | AsyncRunHandlers {
  const h = validateOptions(handlers, 'handlers', ['io', 'mmio', 'debug']);
  for (const k of ['io', 'mmio', 'debug']) if (own(h, k) !== undefined) validateFunction(h[k], `handlers.${k}`);
  return h as RunHandlers | AsyncRunHandlers;
}

function timedOut(timeoutMs: number | undefined): KvmError {
  return new KvmError(osConstants.errno.ETIMEDOUT, 'KVM_RUN', `the guest did not halt within ${timeoutMs} ms`);
}
