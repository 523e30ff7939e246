// The smallest useful guest: real mode, code at 0x1000, one vCPU. Tests,
// benchmarks, the host probe and examples all build it here.
import { Kvm } from '../core/kvm';
import { GuestMemory } from '../core/memory';
import { outOfRange, own, validateArray, validateBoolean, validateInstance, validateInteger, validateLength, validateOptions } from '../core/validate';
import type { Vcpu } from '../core/vcpu';
import type { Vm } from '../core/vm';
import { setupMode } from './modes';

/** Where {@link realModeGuest} loads its code (guest-physical and real-mode linear). */
export const GUEST_CODE = 0x1000;

/** What {@link realModeGuest} built; disposing it closes the VM, the memory and (if it opened it) `/dev/kvm`. */
export interface TinyGuest {
  kvm: Kvm;
  vm: Vm;
  memory: GuestMemory;
  vcpu: Vcpu;
  close(): void;
  [Symbol.dispose](): void;
}

/** Options for {@link realModeGuest}. */
export interface TinyGuestOptions {
  /** Guest RAM at guest-physical 0, in bytes (default 64 KiB). */
  memorySize?: number;
  /** An open {@link Kvm} to use (default: open `/dev/kvm`, closed with the guest). */
  kvm?: Kvm;
  /** Create the in-kernel irqchip (PIC, IOAPIC, local APIC) before the vCPU, as KVM requires. */
  irqchip?: boolean;
}

/**
 * A real-mode guest with `code` at {@link GUEST_CODE}, RAM at 0 and one
 * vCPU about to execute it:
 *
 * ```ts
 * using g = realModeGuest([0xb0, 0x2a, 0xe6, 0xe9, 0xf4]); // mov al,42; out 0xe9,al; hlt
 * g.vcpu.run(); // { reason: 'io', port: 0xe9, value: 42, ... }
 * ```
 */
export function realModeGuest(code: ArrayLike<number>, options: TinyGuestOptions = {}): TinyGuest {
  const o = validateOptions(options, 'options', ['memorySize', 'kvm', 'irqchip']);
  const irqchip = own(o, 'irqchip') !== undefined && validateBoolean(o.irqchip, 'options.irqchip');
  const memorySize = own(o, 'memorySize') === undefined ? 0x10000 : validateLength(o.memorySize, 'options.memorySize');
  const shared = own(o, 'kvm') === undefined ? undefined : validateInstance(o.kvm, 'options.kvm', Kvm);
  const bytes = code instanceof Uint8Array ? code : Uint8Array.from(validateArray(code, 'code', 0x10000).map((b, i) => validateInteger(b, `code[${i}]`, 0, 255)));
  if (GUEST_CODE + bytes.length > memorySize) throw outOfRange('code.length', `<= ${memorySize - GUEST_CODE} to fit in the guest's memory`, bytes.length);
  const kvm = shared ?? Kvm.open();
  let vm: Vm | undefined;
  let memory: GuestMemory | undefined;
  try {
    memory = GuestMemory.allocate(memorySize);
    memory.view(GUEST_CODE, bytes.length).set(bytes);
    vm = kvm.createVm();
    vm.addSlot({ guestPhysAddr: 0, memory });
    if (irqchip) vm.createIrqchip();
    const vcpu = vm.createVcpu();
    setupMode(vcpu, { mode: 'real', entry: GUEST_CODE });
    const close = (): void => {
      vm?.close();
      memory?.close();
      if (!shared) kvm.close();
    };
    return { kvm, vm, memory, vcpu, close, [Symbol.dispose]: close };
  } catch (e) {
    vm?.close();
    memory?.close();
    if (!shared) kvm.close();
    throw e;
  }
}
