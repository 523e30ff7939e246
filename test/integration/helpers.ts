// Shared set-up for tests that run real guests on real KVM.
import { readdirSync } from 'node:fs';
import { GuestMemory, Kvm, type Vcpu, type Vm } from '../../lib';

/** Guest-physical address where test programs are loaded. */
export const CODE = 0x1000;

/** A real-mode guest: 64 KiB of RAM at 0 with `code` at CODE, one vCPU at CODE. */
export interface Guest {
  kvm: Kvm;
  vm: Vm;
  memory: GuestMemory;
  vcpu: Vcpu;
  [Symbol.dispose](): void;
}

export function realModeGuest(code: ArrayLike<number>, memorySize = 0x10000): Guest {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const memory = GuestMemory.allocate(memorySize);
  memory.bytes.set(code, CODE);
  vm.addSlot({ guestPhysAddr: 0, memory });
  const vcpu = vm.createVcpu();
  vcpu.setSregs({ cs: { base: 0n, selector: 0 }, ds: { base: 0n, selector: 0 } });
  vcpu.setRegs({ rip: CODE, rflags: 2 });
  return {
    kvm,
    vm,
    memory,
    vcpu,
    [Symbol.dispose]() {
      vm.close();
      memory.close();
      kvm.close();
    },
  };
}

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
