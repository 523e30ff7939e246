// Whole-VM snapshots: every vCPU's state, the in-kernel devices, the clock
// and the slot layout as one JSON-serialisable object, plus the memory.
// Kernel structs are kept as the bytes KVM gave (base64), so a restore
// hands KVM back exactly what it produced.
import { constants as osConstants } from 'node:os';
import type { MsrEntry, StateKind } from './binding';
import type { CpuidEntry } from './cpuid';
import { KvmError } from './errors';
import { IrqChip } from './irqchip';
import { MemFlag } from './constants';
import { GuestMemory, MAX_VIEW, PAGE_SIZE } from './memory';
import type { MemorySlot } from './slot';
import type { Kvm } from './kvm';
import { invalidArgValue, own, validateArray, validateBoolean, validateInteger, validateObject, validateOptions, validateString, validateUint8Array } from './validate';
import type { Vcpu } from './vcpu';
import type { Vm } from './vm';

/** One vCPU in a {@link VmSnapshot}. */
export interface VcpuSnapshot {
  id: number;
  cpuid: CpuidEntry[];
  tscKhz: number;
  /** [index, value as hex] of every MSR KVM lists for saving and could read. */
  msrs: [number, string][];
  /** The kernel structs, base64, by kind (`lapic` only with the irqchip, `nested` where KVM has it). */
  state: Partial<Record<StateKind | 'nested', string>>;
}

/** A whole VM as {@link Vm.snapshot} saw it: plain data, `JSON.stringify`-able. */
export interface VmSnapshot {
  format: 'node-kvm-snapshot';
  version: 1;
  /** Each slot; `memory` indexes the memory images handed out with the snapshot. */
  slots: { id: number; guestPhysAddr: string; size: number; flags: number; memory: number; pages?: number[] }[];
  /**
   * True for an incremental snapshot: each slot's memory image holds only
   * the pages in its `pages` (4 KiB each, in that order), those written since
   * the previous snapshot. Restore it on top of the snapshots before it.
   */
  incremental: boolean;
  irqchip?: { picMaster: string; picSlave: string; ioapic: string };
  pit?: string;
  /** The PIT was created with `speakerDummy` (port 0x61 in the kernel); a creation flag, not in its state. */
  pitSpeakerDummy?: boolean;
  /** The kvmclock's nanoseconds at the snapshot (hex). */
  clock: string;
  vcpus: VcpuSnapshot[];
}

/** What {@link Vm.snapshot} returns: the description and one memory image per slot (copies). */
export interface Snapshot {
  description: VmSnapshot;
  memory: Uint8Array[];
}

const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const unb64 = (s: unknown, name: string) => new Uint8Array(Buffer.from(validateString(s, name), 'base64'));

// The order QEMU restores a vCPU in: nested state before MSRs, registers
// and XSAVE before special registers, MP state and LAPIC before events.
const ORDER: StateKind[] = ['regs', 'xsave', 'xcrs', 'sregs'];
const AFTER_MSRS: StateKind[] = ['mpState', 'lapic', 'events', 'debugregs'];

// Reads every MSR in `indices`, skipping those KVM refuses (it stops at the first).
function readMsrs(vcpu: Vcpu, indices: number[]): MsrEntry[] {
  const out: MsrEntry[] = [];
  for (let rest = indices; rest.length > 0; ) {
    const got = vcpu.getMsrs(rest);
    out.push(...got);
    rest = rest.slice(got.length + 1);
  }
  return out;
}

// Visits [offset, offset + size) of `memory` in views of at most MAX_VIEW
// bytes; `at` is the view's position from `offset`.
function forEachView(memory: GuestMemory, offset: number, size: number, visit: (view: Uint8Array, at: number) => void): void {
  for (let at = 0; at < size; at += MAX_VIEW) visit(memory.view(offset + at, Math.min(MAX_VIEW, size - at)), at);
}

function copyOut(memory: GuestMemory, offset: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  forEachView(memory, offset, size, (view, at) => out.set(view, at));
  return out;
}

/** Options for {@link Vm.snapshot}. */
export interface SnapshotOptions {
  /**
   * Only the pages written since the previous snapshot, from the dirty log:
   * every slot must log dirty pages (`MemFlag.LOG_DIRTY_PAGES`). A full
   * snapshot resets those slots' logs, so that the next incremental one
   * starts from it.
   */
  incremental?: boolean;
}

// The slot's dirty pages since the last read, and resets its log.
function takeDirtyPages(vm: Vm, slot: MemorySlot): number[] {
  const log = slot.getDirtyLog();
  if (vm.manualDirtyLogProtect) slot.clearDirtyLog(log);
  return log.pages();
}

/** @internal See {@link Vm.snapshot}. */
export function snapshotVm(vm: Vm, kvm: Kvm, options: SnapshotOptions = {}): Snapshot {
  const o = validateOptions(options, 'options', ['incremental']);
  const incremental = own(o, 'incremental') !== undefined && validateBoolean(o.incremental, 'options.incremental');
  if (incremental) {
    const plain = vm.slots.find((s) => !(s.flags & MemFlag.LOG_DIRTY_PAGES));
    if (plain) throw invalidArgValue('options.incremental', true, `needs every slot to log dirty pages; slot ${plain.id} does not (setFlags(MemFlag.LOG_DIRTY_PAGES) before the full snapshot)`);
  }
  const vcpus = vm.vcpus;
  const busy = vcpus.find((v) => v.running);
  if (busy) throw new KvmError(osConstants.errno.EBUSY, 'KVM_RUN', `vCPU ${busy.id} is running; await or kick it before a snapshot`);
  // Finish what the last exits left pending, so the registers are those after it.
  for (const v of vcpus) v.native.completePendingIo();
  const msrList = kvm.getMsrIndexList();
  const memory: Uint8Array[] = [];
  const slots = vm.slots.map((s) => {
    const base = { id: s.id, guestPhysAddr: `0x${s.guestPhysAddr.toString(16)}`, size: s.size, flags: s.flags, memory: memory.length };
    if (!incremental) {
      if (s.flags & MemFlag.LOG_DIRTY_PAGES) takeDirtyPages(vm, s); // the next incremental starts here
      memory.push(copyOut(s.memory, s.offset, s.size));
      return base;
    }
    const pages = takeDirtyPages(vm, s);
    const image = new Uint8Array(pages.length * PAGE_SIZE);
    pages.forEach((p, i) => image.set(s.view(p * PAGE_SIZE, PAGE_SIZE), i * PAGE_SIZE));
    memory.push(image);
    return { ...base, pages };
  });
  const description: VmSnapshot = {
    format: 'node-kvm-snapshot',
    version: 1,
    incremental,
    slots,
    clock: `0x${vm.getClock().clock.toString(16)}`,
    vcpus: vcpus.map((v) => {
      const state: VcpuSnapshot['state'] = {};
      for (const kind of [...ORDER, ...AFTER_MSRS, 'fpu'] as StateKind[]) {
        if (kind === 'lapic' && !vm.hasIrqchip) continue;
        state[kind] = b64(v.native.getState(kind));
      }
      const nested = v.getNestedState();
      if (nested) state.nested = b64(nested);
      return {
        id: v.id,
        cpuid: v.getCpuid(),
        tscKhz: v.getTscKhz(),
        msrs: readMsrs(v, msrList).map((m) => [m.index, `0x${m.value.toString(16)}`] as [number, string]),
        state,
      };
    }),
  };
  if (vm.hasIrqchip) {
    description.irqchip = {
      picMaster: b64(vm.getPic(IrqChip.PIC_MASTER).raw),
      picSlave: b64(vm.getPic(IrqChip.PIC_SLAVE).raw),
      ioapic: b64(vm.getIoapic().raw),
    };
  }
  if (vm.hasPit) {
    description.pit = b64(vm.getPit().raw);
    if (vm.pitSpeakerDummy) description.pitSpeakerDummy = true;
  }
  return { description, memory };
}

/** What {@link Vm.restore} made: the VM, its vCPUs by id, and the memory behind each slot. */
export interface Restored {
  vm: Vm;
  vcpus: Vcpu[];
  memories: GuestMemory[];
  /** MSRs KVM refused to set (index), if any: the restore went on without them. */
  skippedMsrs: number[];
  [Symbol.dispose](): void;
}

/** @internal See {@link Vm.restore}. */
export function restoreVm(kvm: Kvm, snapshots: Snapshot | readonly Snapshot[]): Restored {
  const chain = Array.isArray(snapshots) ? validateArray(snapshots, 'snapshots') : [snapshots];
  if (chain.length === 0) throw invalidArgValue('snapshots', snapshots, 'must hold at least the full snapshot');
  const parsed = chain.map((snapshot, k) => {
    const s = validateObject(snapshot, `snapshots[${k}]`, ['description', 'memory']);
    const d = validateObject(s.description, `snapshots[${k}].description`);
    if (d.format !== 'node-kvm-snapshot' || d.version !== 1) {
      throw invalidArgValue(`snapshots[${k}].description`, d.format, 'is not a node-kvm snapshot of version 1');
    }
    if ((d.incremental === true) !== (k > 0)) {
      throw invalidArgValue(`snapshots[${k}]`, d.incremental, k === 0 ? 'must be a full snapshot' : 'must be an incremental snapshot, taken after the one before it');
    }
    const images = validateArray(s.memory, `snapshots[${k}].memory`).map((m, i) => validateUint8Array(m, `snapshots[${k}].memory[${i}]`));
    return { d, images };
  });
  const d = parsed[parsed.length - 1]!.d;
  // The full images, with every later snapshot's pages laid over them.
  const images = parsed[0]!.images.map((m) => m.slice());
  const baseSlots = (parsed[0]!.d as unknown as VmSnapshot).slots;
  for (const { d: later, images: pageImages } of parsed.slice(1)) {
    for (const slot of (later as unknown as VmSnapshot).slots) {
      const full = baseSlots.find((b) => b.id === slot.id && b.size === slot.size);
      if (!full || !slot.pages) throw invalidArgValue('snapshots', slot.id, 'hold a slot layout that changed between snapshots');
      const target = images[full.memory]!;
      const src = pageImages[slot.memory]!;
      slot.pages.forEach((p, i) => target.set(src.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), p * PAGE_SIZE));
    }
  }
  const vm = kvm.createVm();
  const memories: GuestMemory[] = [];
  const skippedMsrs: number[] = [];
  try {
    const desc = d as unknown as VmSnapshot;
    if (desc.irqchip) vm.createIrqchip();
    if (desc.pit !== undefined) {
      const speakerDummy = desc.pitSpeakerDummy ?? false;
      vm.createPit({ speakerDummy: validateBoolean(speakerDummy, 'snapshot.description.pitSpeakerDummy') });
    }
    baseSlots.forEach((slot, i) => {
      const image = images[validateInteger(slot.memory, `snapshot.description.slots[${i}].memory`, 0, images.length - 1)]!;
      if (image.length !== slot.size) throw invalidArgValue(`snapshot.memory[${slot.memory}]`, image.length, `must be ${slot.size} bytes, the slot's size`);
      const memory = GuestMemory.allocate(slot.size);
      memories.push(memory);
      forEachView(memory, 0, slot.size, (view, at) => view.set(image.subarray(at, at + view.length)));
      vm.addSlot({ slot: slot.id, guestPhysAddr: BigInt(slot.guestPhysAddr), memory, flags: slot.flags });
    });
    const vcpus = (validateArray(desc.vcpus, 'snapshot.description.vcpus') as VcpuSnapshot[]).map((c, i) => {
      const v = vm.createVcpu(c.id);
      const name = `snapshot.description.vcpus[${i}]`;
      v.setCpuid(c.cpuid);
      if (c.state.nested !== undefined) v.setNestedState(unb64(c.state.nested, `${name}.state.nested`));
      for (const kind of ORDER) if (c.state[kind] !== undefined) v.native.setState(kind, unb64(c.state[kind], `${name}.state.${kind}`));
      // MSRs one by one where KVM refuses some: setMsrs stops at the first.
      let rest = c.msrs.map(([index, value]) => ({ index, value: BigInt(value) }));
      while (rest.length > 0) {
        const n = v.setMsrs(rest);
        if (n < rest.length) skippedMsrs.push(rest[n]!.index);
        rest = rest.slice(n + 1);
      }
      for (const kind of AFTER_MSRS) if (c.state[kind] !== undefined) v.native.setState(kind, unb64(c.state[kind], `${name}.state.${kind}`));
      try {
        v.setTscKhz(c.tscKhz);
      } catch {
        // Same frequency on the same host; a KVM without TSC scaling refuses another.
      }
      return v;
    });
    if (desc.irqchip) {
      vm.setIrqchip(IrqChip.PIC_MASTER, unb64(desc.irqchip.picMaster, 'irqchip.picMaster'));
      vm.setIrqchip(IrqChip.PIC_SLAVE, unb64(desc.irqchip.picSlave, 'irqchip.picSlave'));
      vm.setIrqchip(IrqChip.IOAPIC, unb64(desc.irqchip.ioapic, 'irqchip.ioapic'));
    }
    if (desc.pit !== undefined) vm.setPit(unb64(desc.pit, 'pit'));
    vm.setClock({ clock: BigInt(validateString(desc.clock, 'snapshot.description.clock')) });
    return {
      vm,
      vcpus,
      memories,
      skippedMsrs,
      [Symbol.dispose]() {
        vm.close();
        for (const m of memories) m.close();
      },
    };
  } catch (e) {
    vm.close();
    for (const m of memories) m.close();
    throw e;
  }
}
