// kvm-test: smoke
import { describe, expect, it } from 'vitest';
import { KvmError } from '../../../lib';
import { catchError, realModeGuest } from '../helpers';

const SPIN = [0xeb, 0xfe]; // jmp $

describe('runAsync', () => {
  it('runs the guest on its own thread while the event loop keeps turning; kick() ends the run', async () => {
    using g = realModeGuest(SPIN);
    const run = g.vcpu.runAsync();
    expect(g.vcpu.running).toBe(true);
    // Timers fire while the guest spins on the vCPU thread.
    let ticks = 0;
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (++ticks === 5) {
          clearInterval(t);
          resolve();
        }
      }, 2);
    });
    expect(ticks).toBe(5);
    expect(g.vcpu.running).toBe(true);
    expect(g.vcpu.kick()).toBe(true);
    expect(await run).toEqual({ reason: 'intr' });
    expect(g.vcpu.running).toBe(false);
    // The guest was still spinning on its jmp.
    expect(g.vcpu.getRegs().rip).toBe(0x1000n);
  });

  it('resolves with the same decoded exits as run()', async () => {
    using g = realModeGuest([0xb0, 0x2a, 0xe6, 0x80, 0xf4]); // mov al, 42; out 0x80, al; hlt
    expect(await g.vcpu.runAsync()).toMatchObject({ reason: 'io', direction: 'out', port: 0x80, value: 42 });
    expect(await g.vcpu.runAsync()).toEqual({ reason: 'hlt' });
  });

  it('refuses other calls on a running vCPU with EBUSY', async () => {
    using g = realModeGuest(SPIN);
    const run = g.vcpu.runAsync();
    expect(catchError(() => g.vcpu.getRegs())).toMatchObject({ code: 'EBUSY', syscall: 'KVM_GET_REGS' });
    expect(catchError(() => g.vcpu.run())).toMatchObject({ code: 'EBUSY', syscall: 'KVM_RUN' });
    await expect(g.vcpu.runAsync()).rejects.toMatchObject({ code: 'EBUSY' });
    g.vcpu.kick();
    await run;
  });

  it('rejects a run in flight with EBADF when its VM closes, without hanging', async () => {
    using g = realModeGuest(SPIN);
    const run = g.vcpu.runAsync();
    g.vm.close();
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvmError);
    expect(err).toMatchObject({ code: 'EBADF', syscall: 'KVM_RUN' });
    expect(g.vcpu.fd).toBe(-1);
  });

  it('keeps a kick that comes while a run waits for the next turn', async () => {
    // out 0x80, al; jmp $-2: quick exits forever, so runs soon wait for a turn.
    using g = realModeGuest([0xe6, 0x80, 0xeb, 0xfc]);
    let kicked = false;
    setTimeout(() => (kicked = g.vcpu.kick()), 3);
    let last;
    do last = await g.vcpu.runAsync();
    while (last.reason === 'io');
    expect(kicked).toBe(true);
    expect(last).toEqual({ reason: 'intr' });
    expect(g.vcpu.running).toBe(false);
    expect(g.vcpu.kick()).toBe(false);
  });

  it('lets timers run during an awaited loop of quick exits, which alone would never yield', async () => {
    // out 0x80, al; dec ecx; jnz; hlt: 10^6 exits, far longer than the budget.
    using g = realModeGuest([0xe6, 0x80, 0x66, 0x49, 0x75, 0xfa, 0xf4]);
    g.vcpu.setRegs({ rcx: 1_000_000 });
    let fired = false;
    setTimeout(() => (fired = true), 5);
    let exits = 0;
    while (!fired) {
      const exit = await g.vcpu.runAsync();
      expect(exit.reason === 'io' || exit.reason === 'intr').toBe(true);
      if (exit.reason === 'io') exits++;
    }
    // The timer fired while the guest still had most of its loop to go.
    expect(exits).toBeGreaterThan(0);
    expect(exits).toBeLessThan(1_000_000);
    // rip is at or past the last `out` (backends differ); its `dec` has not run yet.
    expect(Number(g.vcpu.getRegs().rcx & 0xffffffffn)).toBe(1_000_000 - exits + 1);
  });

  it('ends a run at timeoutMs, however short', async () => {
    using g = realModeGuest(SPIN);
    expect(await g.vcpu.runAsync({ timeoutMs: 0 })).toEqual({ reason: 'intr' });
    expect(await g.vcpu.runAsync({ timeoutMs: 1 })).toEqual({ reason: 'intr' });
    expect(g.vcpu.getRegs().rip).toBe(0x1000n);
  });

  it('returns false from kick() when nothing runs', () => {
    using g = realModeGuest(SPIN);
    expect(g.vcpu.kick()).toBe(false);
  });
});
