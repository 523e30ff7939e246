// A long-mode guest that writes one byte at each address of a list: the
// probe for dirty logs, MMU counters and traced tables.
import { GuestMemory, Kvm, runUntilHalt, setupMode, type Vcpu, type Vm } from 'node-kvm';

/**
 * Guest-physical base of the data slot the guest touches. Below 1 GiB, so
 * the guest's own page tables for it share the PD already used for the
 * code: a write to a fresh data page is then the only new access, and
 * costs exactly one new second-level (EPT/NPT) leaf.
 */
export const DATA = 0x20000000;
const CODE = 0x10000;
const LIST = CODE + 0x100; // in the code's page, already mapped when touching starts

export interface ToucherOptions {
  dataSize?: number;
  dataFlags?: number;
  /** Host backing of the data slot: true = THP, false = 4 KiB only, 'hugetlb' = hugetlbfs. */
  hugePages?: boolean | 'hugetlb';
  /** Called on the VM before any slot exists (e.g. to enable manual dirty-log protection). */
  beforeSlots?: (vm: Vm) => void;
}

export class Toucher {
  readonly kvm = Kvm.open();
  readonly vm: Vm;
  readonly code = GuestMemory.allocate(0x200000, { hugePages: false });
  readonly data: GuestMemory;
  readonly vcpu: Vcpu;

  constructor(o: ToucherOptions = {}) {
    this.vm = this.kvm.createVm();
    o.beforeSlots?.(this.vm);
    this.data = GuestMemory.allocate(o.dataSize ?? 0x400000, { hugePages: o.hugePages ?? false });
    this.vm.addSlot({ guestPhysAddr: 0, memory: this.code });
    this.vm.addSlot({ guestPhysAddr: DATA, memory: this.data, flags: o.dataFlags ?? 0 });
    this.vcpu = this.vm.createVcpu();
    setupMode(this.vcpu, { mode: 'long', entry: CODE, stack: 0x80000 });
  }

  /** Writes a byte at DATA + each offset; `atMarker` runs after set-up, just before the first write. */
  touch(offsets: number[], atMarker: () => void = () => {}): void {
    const prog = new Uint8Array(0x26);
    const v = new DataView(prog.buffer);
    prog.set([0x48, 0xbe], 0); // mov rsi, LIST
    v.setBigUint64(2, BigInt(LIST), true);
    prog.set([0x48, 0xb9], 10); // mov rcx, count
    v.setBigUint64(12, BigInt(offsets.length), true);
    // out 0x80, al; 1: mov rdi, [rsi]; mov byte [rdi], 1; add rsi, 8; dec rcx; jnz 1b; hlt
    prog.set([0xe6, 0x80, 0x48, 0x8b, 0x3e, 0xc6, 0x07, 0x01, 0x48, 0x83, 0xc6, 0x08, 0x48, 0xff, 0xc9, 0x75, 0xf1, 0xf4], 20);
    this.code.bytes.set(prog, CODE);
    const list = new DataView(this.code.buffer, LIST, offsets.length * 8);
    offsets.forEach((o, i) => list.setBigUint64(i * 8, BigInt(DATA + o), true));
    this.vcpu.setRegs({ rip: CODE });
    runUntilHalt(this.vcpu, {
      io: (e) => {
        if (e.port !== 0x80) throw new Error(`unexpected port ${e.port}`);
        atMarker();
      },
    });
  }

  [Symbol.dispose](): void {
    this.vm.close();
    this.code.close();
    this.data.close();
    this.kvm.close();
  }
}
