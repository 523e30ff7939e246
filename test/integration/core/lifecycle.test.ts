// kvm-test: smoke
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GuestMemory, Kvm, KvmError, type Vm } from '../../../lib';
import { CHILD_GUEST, catchError, openFds, realModeGuest, runNode, runToExit } from '../helpers';

const HLT = [0xf4];

describe('closing', () => {
  it('is idempotent, and use after close throws EBADF naming the object', () => {
    const kvm = Kvm.open();
    const vm = kvm.createVm();
    const vcpu = vm.createVcpu();
    vcpu.close();
    vcpu.close();
    const err = catchError(() => vcpu.getRegs());
    expect(err).toBeInstanceOf(KvmError);
    expect(err).toMatchObject({ code: 'EBADF', syscall: 'KVM_GET_REGS' });
    expect((err as Error).message).toMatch(/vCPU is closed/);
    vm.close();
    vm.close();
    expect(catchError(() => vm.createVcpu())).toMatchObject({ code: 'EBADF', syscall: 'KVM_CREATE_VCPU' });
    kvm.close();
    kvm.close();
    expect(catchError(() => kvm.createVm())).toMatchObject({ code: 'EBADF' });
    expect((catchError(() => kvm.createVm()) as Error).message).toMatch(/Kvm is closed/);
  });

  it('closes the vCPUs with their VM', () => {
    using kvm = Kvm.open();
    const vm = kvm.createVm();
    const vcpu = vm.createVcpu();
    vm.close();
    expect(vcpu.fd).toBe(-1);
    expect(catchError(() => vcpu.run())).toMatchObject({ code: 'EBADF', syscall: 'KVM_RUN' });
  });

  it('refuses to answer an exit once its vCPU is closed (EBADF), instead of dropping the answer', () => {
    const IN_AL = [0xe4, 0x80, 0xf4]; // in al, 0x80; hlt
    const MMIO_READ = [0xb8, 0x00, 0xd0, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xf4]; // ds = 0xd000; mov al, [0]; hlt
    for (const code of [IN_AL, MMIO_READ]) {
      for (const closing of ['vm', 'vcpu'] as const) {
        using g = realModeGuest(code);
        const exit = g.vcpu.run();
        expect(exit.reason === 'io' || exit.reason === 'mmio').toBe(true);
        if (exit.reason !== 'io' && exit.reason !== 'mmio') continue;
        const { respond } = exit;
        if (closing === 'vm') g.vm.close();
        else g.vcpu.close();
        const err = catchError(() => respond(0x42));
        expect(err).toBeInstanceOf(KvmError);
        expect(err).toMatchObject({ code: 'EBADF', syscall: 'KVM_RUN' });
        expect((err as Error).message).toMatch(/can no longer be answered/);
        // Bad input is still told apart from a closed vCPU.
        expect(catchError(() => respond(-1000))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
      }
    }
  });

  it('supports `using` through Symbol.dispose', () => {
    let fd = -1;
    let vm;
    {
      using kvm = Kvm.open();
      fd = kvm.fd;
      using v = kvm.createVm();
      vm = v;
      expect(fd).toBeGreaterThan(2);
    }
    expect(vm.fd).toBe(-1);
  });

  it('leaks no file descriptors over 200 full guest lifecycles', () => {
    const before = openFds();
    for (let i = 0; i < 200; i++) {
      using g = realModeGuest(HLT);
      expect(runToExit(g.vcpu).reason).toBe('hlt');
    }
    expect(openFds()).toBe(before);
  });

  it('keeps slot memory alive through garbage collection until the slot is deleted', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'vitest runs with --expose-gc').toBeTypeOf('function');
    const collect = async () => {
      await new Promise((r) => setImmediate(r)); // WeakRefs hold until the job ends
      for (let i = 0; i < 3; i++) gc!();
    };
    using g = realModeGuest([
      0xb8, 0x00, 0x10, // mov ax, 0x1000
      0x8e, 0xd8, //       mov ds, ax
      0xa0, 0x00, 0x00, // mov al, [0]       ; gpa 0x10000
      0xe6, 0x80, //       out 0x80, al
      0xf4, //             hlt
    ]);
    // Register through the native layer, from a function whose frame is
    // gone afterwards, so that nothing in JavaScript but the VM refers to
    // this memory.
    const ref = registerScratch(g.vm, 0x5a);
    await collect();
    expect(ref.deref()).toBeDefined();
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', port: 0x80, value: 0x5a });

    g.vm.native.setUserMemoryRegion(7, 0, 0x10000, 0); // delete the slot
    await collect();
    expect(ref.deref()).toBeUndefined();
  });
});

function registerScratch(vm: Vm, firstByte: number): WeakRef<object> {
  const scratch = GuestMemory.allocate(0x1000);
  scratch.bytes[0] = firstByte;
  vm.native.setUserMemoryRegion(7, 0, 0x10000, 0x1000, scratch.native.slot, 0, scratch);
  return new WeakRef(scratch.native);
}

// Teardown runs finalizers in any order; these run in child processes so
// that a crash shows as an exit code instead of taking the test runner down.
describe('process and worker teardown', () => {
  const node = runNode;
  const guest = CHILD_GUEST;

  it('exits cleanly with vCPUs that ran on their threads and were never closed', () => {
    // Kept reachable, so that only teardown finalizes them.
    const r = node(`${guest}
      globalThis.keep = [guest([0xf4]), guest([0xf4])];
      Promise.all(keep.map((v) => v.runAsync())).then((e) => console.log(e.map((x) => x.reason).join()));`);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('hlt,hlt');
    expect(r.status).toBe(0);
  });

  it('ends a sync run with no deadline when a vm timeout terminates its script, and the vCPU goes on', () => {
    // In a child: were the run to go on, only the child would block.
    const r = node(`${guest}
      const vcpu = guest([0xeb, 0xfe]); // jmp $: no exit of its own
      try {
        require('node:vm').runInNewContext('vcpu.run()', { vcpu }, { timeout: 200 });
        console.log('returned');
      } catch (e) {
        console.log(e.code);
      }
      console.log(vcpu.run({ timeoutMs: 20 }).reason);`, 20_000);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['ERR_SCRIPT_EXECUTION_TIMEOUT', 'intr']);
    expect(r.status).toBe(0);
  });

  it('survives a worker terminated while its guest spins on a vCPU thread', () => {
    const r = node(`
      const { Worker } = require('node:worker_threads');
      const w = new Worker(${JSON.stringify(`${guest}
        // Kept reachable: a dropped vCPU would be collected and its run end.
        globalThis.keep = guest([0xeb, 0xfe]);
        keep.runAsync();
        require('node:worker_threads').parentPort.postMessage('spinning');`)}, { eval: true });
      w.on('message', async () => { console.log('exit code', await w.terminate()); });`);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('exit code 1');
    expect(r.status).toBe(0);
  });
});
