import { binding, NativeVcpu, type NativeVm } from './binding';
import { Cap } from './constants';
import { KvmStats } from './stats';
import type { Kvm } from './kvm';
import { argError, KvmError } from './errors';
import { GuestMemory, PAGE_SIZE, validatePages } from './memory';
import { constants } from 'node:os';
import { MemFlag } from './constants';
import { invalidArgValue, outOfRange, own, validateAligned, validateArray, validateBoolean, validateInstance, validateInteger, validateLength, validateObject, validateOneOf, validateOptions, validateU32, validateU64, validateUint8Array } from './validate';
import { GuestMemfd } from './guest-memfd';
import { MemorySlot, validateSlotFlags } from './slot';
import { restoreVm, snapshotVm, type Restored, type Snapshot, type SnapshotOptions } from './snapshot';
import { decodeClock, decodeIoapic, decodePic, decodePit, encodeClock, IrqChip, type ClockData, type IoapicState, type PicState, type PitState } from './irqchip';
import { Vcpu } from './vcpu';
import { addIoEventFd, addIrqFd, type IoEventFd, type IoEventFdOptions, type IrqFd, type IrqFdOptions } from './eventfd';
import { addCoalescedZone, checkDirtyRingSize, type CoalescedZone, type CoalescedZoneOptions } from './rings';

/** Where and how {@link Vm.addSlot} maps memory into the guest. */
export interface SlotOptions {
  /** Guest-physical address of the first byte; page-aligned. */
  guestPhysAddr: bigint | number;
  /** The host memory behind the slot. */
  memory: GuestMemory;
  /** Byte offset into `memory`; page-aligned. Default 0. */
  offset?: number;
  /** Bytes to map; a multiple of the page size. Default: the rest of `memory`. */
  size?: number;
  /** `KVM_MEM_*` flags ({@link MemFlag}). Default 0. */
  flags?: number;
  /**
   * Bind the slot to a guest_memfd ({@link Vm.createGuestMemfd}) at
   * `offset` as well: `KVM_SET_USER_MEMORY_REGION2` with
   * `KVM_MEM_GUEST_MEMFD`. KVM then refuses to move or re-flag the slot.
   */
  guestMemfd?: { memfd: GuestMemfd; offset?: number };
  /** Slot id; default: the lowest free one. */
  slot?: number;
}

/** A route of {@link Vm.setGsiRouting}: a GSI to an irqchip pin, or to an MSI message. */
export type GsiRoute =
  | { gsi: number; irqchip: (typeof IrqChip)[keyof typeof IrqChip]; pin: number }
  | { gsi: number; msi: { address: bigint | number; data: number } };

/** What {@link Vm.setMsrFilter} takes: ranges of MSRs whose reads and/or writes KVM handles. */
export interface MsrFilter {
  /** Deny every MSR no range allows (default: allow). */
  defaultDeny?: boolean;
  /** Up to 16 ranges: `bitmap` has a bit per MSR from `base` (1: allowed); no bitmap: all denied. */
  ranges?: { base: number; nmsrs: number; read?: boolean; write?: boolean; bitmap?: Uint8Array }[];
}

/**
 * A virtual machine (a KVM VM fd). Made by {@link Kvm.createVm}. Closing it
 * closes its vCPUs first, then the VM, and only then lets go of the memory
 * its slots mapped.
 */
export class Vm {
  /** @internal */
  readonly native: NativeVm;
  readonly #slots = new Map<number, MemorySlot>();
  #generation = 0; // the native VM's slotGeneration: it starts with no slots
  #nextVcpuId = 0;
  #manualProtect = false;
  readonly #vcpus: Vcpu[] = [];
  #irqchip = false;
  #pit: { speakerDummy: boolean } | undefined;
  #maxVcpuId: number | undefined;
  #memslots: { perSpace: number; spaces: number } | undefined;

  /** The KVM system this VM was created from. */
  readonly kvm: Kvm;

  /** @internal */
  constructor(native: NativeVm, kvm: Kvm) {
    this.native = native;
    this.kvm = kvm;
  }

  /** The VM's file descriptor (-1 once closed). */
  get fd(): number {
    return this.native.fd;
  }

  /** `KVM_CHECK_EXTENSION` on the VM fd: what this VM supports (0 = no). */
  checkExtension(cap: number): number {
    return this.native.checkExtension(validateU32(cap, 'cap'));
  }

  /** Sets the 3-page TSS area that Intel hosts need for real mode (`KVM_SET_TSS_ADDR`). */
  setTssAddr(address: bigint | number): void {
    this.native.setTssAddr(validateU64(address, 'address'));
  }

  /** Sets the identity-map page that Intel hosts need for real mode (`KVM_SET_IDENTITY_MAP_ADDR`). */
  setIdentityMapAddr(address: bigint | number): void {
    this.native.setIdentityMapAddr(validateU64(address, 'address'));
  }

  /**
   * Maps memory into guest-physical space (`KVM_SET_USER_MEMORY_REGION`).
   * Checked before the ioctl: page alignment of `guestPhysAddr`, `offset`
   * and `size`, the range inside `memory`, the slot id (below
   * `KVM_CAP_NR_MEMSLOTS`) and overlap with this VM's other slots, all as
   * Node-style argument errors; what the kernel still refuses comes back as
   * a `KvmError`.
   */
  addSlot(options: SlotOptions): MemorySlot {
    const o = validateObject(options, 'options', ['guestPhysAddr', 'memory', 'offset', 'size', 'flags', 'slot', 'guestMemfd']);
    const memory = validateInstance(own(o, 'memory'), 'options.memory', GuestMemory);
    const gpa = validateU64(own(o, 'guestPhysAddr'), 'options.guestPhysAddr');
    validateAligned(gpa, 'options.guestPhysAddr', PAGE_SIZE, `a multiple of ${PAGE_SIZE}`);
    const offset = own(o, 'offset') === undefined ? 0 : validateLength(o.offset, 'options.offset');
    validateAligned(offset, 'options.offset', PAGE_SIZE, `a multiple of ${PAGE_SIZE}`);
    if (memory.closed) throw new KvmError(constants.errno.EBADF, 'KVM_SET_USER_MEMORY_REGION', 'the memory is closed');
    if (offset >= memory.size) throw outOfRange('options.offset', `< the memory's size (${memory.size})`, offset);
    const size = validatePages(own(o, 'size') === undefined ? memory.size - offset : o.size, 'options.size');
    if (offset + size > memory.size) {
      throw outOfRange('options.size', `<= ${memory.size - offset} (the memory's size minus options.offset)`, size);
    }
    if (gpa + BigInt(size) > 1n << 64n) throw outOfRange('options.size', 'such that guestPhysAddr + size <= 2^64', size);
    const flags = own(o, 'flags') === undefined ? 0 : validateSlotFlags(o.flags, 'options.flags');
    const id = own(o, 'slot') === undefined ? this.#freeSlotId() : this.#validateSlotId(o.slot, 'options.slot');
    if (this.#slots.has(id)) {
      throw invalidArgValue('options.slot', id, 'is in use; use its move() or setFlags(), or delete() it first');
    }
    const end = gpa + BigInt(size);
    for (const s of this.#slots.values()) {
      if (s.id >>> 16 === id >>> 16 && gpa < s.guestPhysAddr + BigInt(s.size) && s.guestPhysAddr < end) {
        throw invalidArgValue(
          'options.guestPhysAddr',
          gpa,
          `overlaps slot ${s.id} (0x${s.guestPhysAddr.toString(16)}-0x${(s.guestPhysAddr + BigInt(s.size)).toString(16)}) with 0x${gpa.toString(16)}-0x${end.toString(16)}; delete or move that slot first`,
        );
      }
    }
    let hva: bigint | undefined;
    let kernelFlags = flags;
    if (own(o, 'guestMemfd') !== undefined) {
      const g = validateObject(o.guestMemfd, 'options.guestMemfd', ['memfd', 'offset']);
      const memfd = validateInstance(g.memfd, 'options.guestMemfd.memfd', GuestMemfd);
      const gmemOffset = own(g, 'offset') === undefined ? 0 : validateLength(g.offset, 'options.guestMemfd.offset');
      validateAligned(gmemOffset, 'options.guestMemfd.offset', PAGE_SIZE, `a multiple of ${PAGE_SIZE}`);
      if (gmemOffset + size > memfd.size) throw outOfRange('options.guestMemfd.offset', `<= ${memfd.size - size} (the guest_memfd's size minus the slot's)`, gmemOffset);
      hva = this.native.setUserMemoryRegion(id, flags, gpa, size, memory.native.slot, offset, memory, memfd.liveFd('KVM_SET_USER_MEMORY_REGION2'), gmemOffset);
      kernelFlags |= MemFlag.GUEST_MEMFD; // as the addon sets it
    } else {
      hva = this.native.setUserMemoryRegion(id, flags, gpa, size, memory.native.slot, offset, memory);
    }
    // Made from what is known here, with no second call into the addon
    // (~10 µs of cold caches after the ioctl). The addon's generation counts
    // this change too; when it also counts others (a slot dropped before a
    // run, a slot's own move or delete), the two differ and the next #sync()
    // re-reads the slots. `init` is a literal: an object spread cost ~1.7 µs.
    const slot = new MemorySlot(this.native, { id, memory, offset, size, gpa, flags: kernelFlags, hva: hva! }, (s) => this.#slots.delete(s.id));
    this.#slots.set(id, slot);
    this.#generation++;
    return slot;
  }

  /** The registered slots, by id. */
  get slots(): MemorySlot[] {
    this.#sync();
    return [...this.#slots.values()].sort((a, b) => a.id - b.id);
  }

  /** The slot that holds a guest-physical address, or undefined: such accesses exit as MMIO. */
  findSlot(gpa: bigint | number): MemorySlot | undefined {
    gpa = validateU64(gpa, 'gpa');
    // Hot (page-table building calls it per entry): no sorting, no native call.
    this.#sync();
    for (const s of this.#slots.values()) if (s.contains(gpa)) return s;
    return undefined;
  }

  /**
   * A view of guest-physical memory `[gpa, gpa + length)`, in place: what
   * the guest reads and writes. The range must lie in one slot.
   */
  memoryAt(gpa: bigint | number, length: number): Uint8Array {
    gpa = validateU64(gpa, 'gpa');
    validateLength(length, 'length');
    const slot = this.findSlot(gpa);
    const offset = slot === undefined ? -1 : Number(BigInt(gpa) - slot.guestPhysAddr);
    if (slot === undefined || offset + length > slot.size) {
      throw argError(
        `guest-physical range 0x${BigInt(gpa).toString(16)}+0x${length.toString(16)} is not inside one memory slot`,
      );
    }
    return slot.view(offset, length);
  }

  /**
   * The host virtual address behind a guest-physical one, as KVM computes
   * it: `userspace_addr + (gfn - base_gfn) * 4096 + offset`. Undefined
   * outside every slot (such accesses exit as MMIO).
   */
  gpaToHva(gpa: bigint | number): bigint | undefined {
    const a = validateU64(gpa, 'gpa');
    return this.findSlot(a)?.hvaOf(a);
  }

  /** Opens the VM's binary statistics (`KVM_GET_STATS_FD`): `pages_4k`, `pages_2m`, `pages_1g`, `mmu_*`... */
  openStats(): KvmStats {
    return new KvmStats(this.native.getStatsFd());
  }

  /** `KVM_ENABLE_CAP` on the VM; returns the ioctl's result. */
  enableCap(cap: number, args: (bigint | number)[] = []): number {
    validateU32(cap, 'cap');
    const values = validateArray(args, 'args', 4).map((a, i) => validateU64(a, `args[${i}]`));
    return this.native.enableCap(cap, values);
  }

  /**
   * Switches dirty logging to manual protection
   * (`KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`): reading the log no longer
   * clears it; {@link MemorySlot.clearDirtyLog} does. With
   * `initiallySet`, a new dirty-logging slot starts all dirty. Call it
   * before adding dirty-logging slots.
   */
  enableManualDirtyLogProtect(options: { initiallySet?: boolean } = {}): void {
    const o = validateOptions(options, 'options', ['initiallySet']);
    const initiallySet = own(o, 'initiallySet') === undefined ? false : validateBoolean(o.initiallySet, 'options.initiallySet');
    const C = binding.constants;
    const flags = (C.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE ?? 1) | (initiallySet ? C.KVM_DIRTY_LOG_INITIALLY_SET ?? 2 : 0);
    this.enableCap(Cap.MANUAL_DIRTY_LOG_PROTECT2, [flags]);
    this.#manualProtect = true;
  }

  /** True after {@link Vm.enableManualDirtyLogProtect}. */
  get manualDirtyLogProtect(): boolean {
    return this.#manualProtect;
  }

  /**
   * `KVM_CREATE_IRQCHIP`: the in-kernel PIC pair, IOAPIC and (for vCPUs
   * created afterwards) local APICs. Then `hlt` no longer exits: the vCPU
   * waits in the kernel for an interrupt.
   */
  createIrqchip(): void {
    this.native.createIrqchip();
    this.#irqchip = true;
  }

  /** True after {@link Vm.createIrqchip}. */
  get hasIrqchip(): boolean {
    return this.#irqchip;
  }

  /** True after {@link Vm.createPit}. */
  get hasPit(): boolean {
    return this.#pit !== undefined;
  }

  /** @internal Whether the PIT was created with `speakerDummy` (snapshots record it). */
  get pitSpeakerDummy(): boolean {
    return this.#pit?.speakerDummy === true;
  }

  /** The vCPUs created in this VM and not closed, by id. */
  get vcpus(): Vcpu[] {
    return this.#vcpus.filter((v) => v.fd >= 0).sort((a, b) => a.id - b.id);
  }

  /** `KVM_GET_IRQCHIP` for the PIC master or slave. */
  getPic(chip: typeof IrqChip.PIC_MASTER | typeof IrqChip.PIC_SLAVE): PicState {
    return decodePic(this.native.getIrqchip(validateOneOf(chip, 'chip', [IrqChip.PIC_MASTER, IrqChip.PIC_SLAVE])));
  }

  /** `KVM_GET_IRQCHIP` for the IOAPIC. */
  getIoapic(): IoapicState {
    return decodeIoapic(this.native.getIrqchip(IrqChip.IOAPIC));
  }

  /** `KVM_SET_IRQCHIP`: restores a chip from the `raw` bytes a get returned. */
  setIrqchip(chip: (typeof IrqChip)[keyof typeof IrqChip], raw: Uint8Array): void {
    this.native.setIrqchip(validateOneOf(chip, 'chip', Object.values(IrqChip)), validateUint8Array(raw, 'raw'));
  }

  /**
   * `KVM_IRQ_LINE_STATUS`: drives interrupt line `irq` (a GSI) high or low.
   * Returns the kernel's delivery status: > 0 delivered, 0 masked or
   * coalesced, < 0 ignored.
   */
  irqLine(irq: number, level: boolean): number {
    return this.native.irqLine(validateInteger(irq, 'irq', 0, 0xffffffff), validateBoolean(level, 'level') ? 1 : 0);
  }

  /**
   * `KVM_SET_GSI_ROUTING`: replaces the whole GSI routing table. Each entry
   * routes a GSI to a pin of an irqchip or to an MSI message.
   */
  setGsiRouting(entries: readonly GsiRoute[]): void {
    const list = validateArray(entries, 'entries', 4096).map((e, i) => {
      const o = validateObject(e, `entries[${i}]`, ['gsi', 'irqchip', 'pin', 'msi']);
      const gsi = validateInteger(o.gsi, `entries[${i}].gsi`, 0, 0xffffffff);
      if (own(o, 'msi') !== undefined) {
        const m = validateObject(o.msi, `entries[${i}].msi`, ['address', 'data']);
        const address = validateU64(m.address, `entries[${i}].msi.address`);
        return { gsi, type: 2, addressLo: Number(address & 0xffffffffn), addressHi: Number(address >> 32n), data: validateInteger(m.data, `entries[${i}].msi.data`, 0, 0xffffffff) };
      }
      return { gsi, type: 1, irqchip: validateOneOf(o.irqchip, `entries[${i}].irqchip`, Object.values(IrqChip)), pin: validateInteger(o.pin, `entries[${i}].pin`, 0, 23) };
    });
    this.native.setGsiRouting(list);
  }

  /**
   * `KVM_CREATE_PIT2`: the in-kernel i8254 timer on ports 0x40-0x43 (needs
   * the irqchip first). `speakerDummy` (`KVM_PIT_SPEAKER_DUMMY`) has the
   * kernel also answer port 0x61, the speaker and timer-2 gate that Linux
   * reads; without it those accesses exit to you.
   */
  createPit(options: { speakerDummy?: boolean } = {}): void {
    const o = validateOptions(options, 'options', ['speakerDummy']);
    const speakerDummy = own(o, 'speakerDummy') !== undefined && validateBoolean(o.speakerDummy, 'options.speakerDummy');
    this.native.createPit2(speakerDummy ? 1 : 0);
    this.#pit = { speakerDummy };
  }

  /** `KVM_GET_PIT2`. */
  getPit(): PitState {
    return decodePit(this.native.getPit2());
  }

  /** `KVM_SET_PIT2` from the `raw` bytes {@link Vm.getPit} returned. */
  setPit(raw: Uint8Array): void {
    this.native.setPit2(validateUint8Array(raw, 'raw'));
  }

  /** `KVM_GET_CLOCK`: the guest's kvmclock, in nanoseconds. */
  getClock(): ClockData {
    return decodeClock(this.native.getClock());
  }

  /** `KVM_SET_CLOCK`: sets the guest's kvmclock (`clock` in nanoseconds; `flags` as `KVM_CLOCK_*`). */
  setClock(clock: Partial<ClockData>): void {
    this.native.setClock(encodeClock(clock));
  }

  /**
   * `KVM_X86_SET_MSR_FILTER`: which MSR reads and writes KVM handles. A
   * denied access exits to user space as `rdmsr`/`wrmsr` once
   * `KVM_CAP_X86_USER_SPACE_MSR` is enabled with the FILTER reason (see
   * {@link Vm.enableUserSpaceMsr}); `ranges` allow what their bitmaps set.
   */
  setMsrFilter(filter: MsrFilter): void {
    const o = validateObject(filter, 'filter', ['defaultDeny', 'ranges']);
    const deny = own(o, 'defaultDeny') !== undefined && validateBoolean(o.defaultDeny, 'filter.defaultDeny');
    const ranges = validateArray(own(o, 'ranges') ?? [], 'filter.ranges', 16).map((r, i) => {
      const x = validateObject(r, `filter.ranges[${i}]`, ['base', 'nmsrs', 'read', 'write', 'bitmap']);
      const nmsrs = validateInteger(x.nmsrs, `filter.ranges[${i}].nmsrs`, 1, 0x600 * 8);
      const bitmap = own(x, 'bitmap') === undefined ? new Uint8Array(Math.ceil(nmsrs / 8)) : validateUint8Array(x.bitmap, `filter.ranges[${i}].bitmap`);
      const read = own(x, 'read') !== undefined && validateBoolean(x.read, `filter.ranges[${i}].read`);
      const write = own(x, 'write') !== undefined && validateBoolean(x.write, `filter.ranges[${i}].write`);
      if (!read && !write) throw invalidArgValue(`filter.ranges[${i}]`, r, 'must apply to read, write or both');
      return { flags: (read ? 1 : 0) | (write ? 2 : 0), base: validateInteger(x.base, `filter.ranges[${i}].base`, 0, 0xffffffff), nmsrs, bitmap };
    });
    this.native.setMsrFilter(deny ? 1 : 0, ranges);
  }

  /**
   * Enables `KVM_CAP_X86_USER_SPACE_MSR`: MSR accesses KVM would answer
   * with #GP (`unknown`), that are invalid (`invalid`) or that the filter
   * denies (`filter`) exit as `rdmsr`/`wrmsr` for JavaScript to answer.
   */
  enableUserSpaceMsr(reasons: { unknown?: boolean; invalid?: boolean; filter?: boolean }): void {
    const o = validateObject(reasons, 'reasons', ['unknown', 'invalid', 'filter']);
    let mask = 0;
    if (own(o, 'invalid') !== undefined && validateBoolean(o.invalid, 'reasons.invalid')) mask |= 1;
    if (own(o, 'unknown') !== undefined && validateBoolean(o.unknown, 'reasons.unknown')) mask |= 2;
    if (own(o, 'filter') !== undefined && validateBoolean(o.filter, 'reasons.filter')) mask |= 4;
    this.enableCap(Cap.X86_USER_SPACE_MSR, [mask]);
  }

  /**
   * `KVM_CREATE_GUEST_MEMFD`: memory owned by KVM, to bind to a slot with
   * `addSlot({ ..., guestMemfd: { memfd } })` (`KVM_SET_USER_MEMORY_REGION2`
   * with `KVM_MEM_GUEST_MEMFD`). Where a VM has no private memory its
   * guest uses the slot's ordinary memory; the binding is what changes.
   */
  createGuestMemfd(size: number): GuestMemfd {
    validatePages(size, 'size');
    return new GuestMemfd(this.native.createGuestMemfd(size, 0), size);
  }

  /** Creates a vCPU (`KVM_CREATE_VCPU`); ids default to 0, 1, 2... */
  createVcpu(id?: number): Vcpu {
    const vcpuId = id === undefined ? this.#nextVcpuId : validateU32(id, 'id');
    // KVM refuses ids at or above KVM_CAP_MAX_VCPU_ID (128), else MAX_VCPUS.
    // Every x86 KVM since Linux 4.x takes ids below 255: ask only beyond.
    if (vcpuId >= 128) this.#maxVcpuId ??= this.native.checkExtension(128) || this.native.checkExtension(Cap.MAX_VCPUS) || 0x100000000;
    if (this.#maxVcpuId !== undefined && vcpuId >= this.#maxVcpuId) throw outOfRange('id', `< ${this.#maxVcpuId} (KVM_CAP_MAX_VCPU_ID)`, vcpuId);
    const vcpu = new Vcpu(new NativeVcpu(this.native.createVcpu(vcpuId)), this);
    this.#nextVcpuId = Math.max(this.#nextVcpuId, vcpuId + 1);
    for (let i = this.#vcpus.length - 1; i >= 0; i--) if (this.#vcpus[i]!.fd < 0) this.#vcpus.splice(i, 1);
    this.#vcpus.push(vcpu);
    return vcpu;
  }

  /**
   * Saves the whole VM: every vCPU's state (after completing any I/O the
   * last exit left pending), the in-kernel irqchip and PIT, the clock and
   * the slot layout, as one JSON-serialisable description, and a copy of
   * each slot's memory. No vCPU may be running. {@link Vm.restore} brings it
   * back in a new VM.
   */
  snapshot(options: SnapshotOptions = {}): Snapshot {
    return snapshotVm(this, this.kvm, options);
  }

  /**
   * A new VM in `kvm` from a {@link Vm.snapshot}: memory, slots, irqchip,
   * PIT, vCPUs (state restored in the order KVM needs) and clock. The
   * guest goes on from where the snapshot was taken. Give a full snapshot
   * and the incremental ones after it, in order, to restore the last.
   */
  static restore(kvm: Kvm, snapshots: Snapshot | readonly Snapshot[]): Restored {
    return restoreVm(kvm, snapshots);
  }

  /** Closes the vCPUs, the VM and releases the slots' memory. Idempotent. */
  close(): void {
    this.native.close();
    for (const s of [...this.#slots.values()]) s.markDeleted();
  }

  /** Same as {@link Vm.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // --- eventfds and rings (lib/core/eventfd.ts, lib/core/rings.ts) ---

  /**
   * `KVM_IOEVENTFD`: a guest write of `length` bytes to `address` (a port
   * with `pio`; with `datamatch`, only of that value) signals `eventfd`
   * and the vCPU goes on without an exit: a doorbell. Checked before the
   * ioctl: the length, the port range, that `datamatch` fits in `length`
   * bytes. `remove()` (or closing the EventFd) undoes it.
   */
  ioeventfd(options: IoEventFdOptions): IoEventFd {
    return addIoEventFd(this.native, options);
  }

  /**
   * `KVM_IRQFD`: each write to `eventfd` raises GSI `gsi` in the in-kernel
   * irqchip ({@link Vm.createIrqchip} first, else a `KvmError` EAGAIN).
   * `remove()` (or closing the EventFd) undoes it.
   */
  irqfd(options: IrqFdOptions): IrqFd {
    return addIrqFd(this.native, options);
  }

  /**
   * `KVM_REGISTER_COALESCED_MMIO`: guest writes to `[address, address +
   * size)` (ports with `pio`) are queued in a ring instead of exiting; read
   * them with {@link Vcpu.drainCoalesced}. For write bursts to device
   * registers (frame buffers, logs); reads still exit.
   */
  addCoalescedZone(options: CoalescedZoneOptions): CoalescedZone {
    return addCoalescedZone(this.native, options);
  }

  /**
   * Turns on the dirty ring (`KVM_CAP_DIRTY_LOG_RING`, the `_ACQ_REL` form
   * where KVM has it): each vCPU gets a ring of `bytes` / 16 entries where
   * KVM lists the pages it dirties in slots with `LOG_DIRTY_PAGES`; read
   * them with {@link Vcpu.harvestDirtyRing}, then
   * {@link Vm.resetDirtyRings}. Only before the first vCPU is created.
   * Replaces the bitmap: {@link MemorySlot.getDirtyLog} then fails with
   * `ENXIO`. When a ring fills, its vCPU's run exits (`KVM_EXIT_DIRTY_RING_FULL`)
   * until it is harvested and reset.
   */
  enableDirtyRing(bytes: number): void {
    validateU32(bytes, 'bytes');
    if (this.#nextVcpuId > 0) {
      throw argError('the dirty ring must be enabled before the VM\'s first vCPU is created (KVM refuses it afterwards)');
    }
    if (this.native.dirtyRingBytes !== 0) throw argError(`the dirty ring is already enabled (${this.native.dirtyRingBytes} bytes per vCPU)`);
    const acqRel = checkDirtyRingSize(this.native, bytes, 'bytes');
    this.native.enableDirtyRing(bytes, acqRel);
  }

  /** The dirty ring's size per vCPU in bytes; 0 without {@link Vm.enableDirtyRing}. */
  get dirtyRingBytes(): number {
    return this.native.dirtyRingBytes;
  }

  /**
   * `KVM_RESET_DIRTY_RINGS`: write-protects again the pages harvested
   * from every vCPU's ring (so their next write is logged again) and frees
   * their entries. Returns how many entries were reset.
   */
  resetDirtyRings(): number {
    if (this.native.fd >= 0 && this.native.dirtyRingBytes === 0) throw argError('the VM has no dirty ring; call vm.enableDirtyRing() before creating vCPUs');
    return this.native.resetDirtyRings();
  }

  // Slot ids as KVM_SET_USER_MEMORY_REGION takes them: address space in the
  // high 16 bits, below KVM_CAP_MULTI_ADDRESS_SPACE; the id in the low 16
  // bits, below KVM_CAP_NR_MEMSLOTS.
  #validateSlotId(value: unknown, name: string): number {
    const id = validateU32(value, name);
    this.#memslots ??= {
      perSpace: this.native.checkExtension(Cap.NR_MEMSLOTS) || 0x10000,
      spaces: this.native.checkExtension(118) || 1,
    };
    const { perSpace, spaces } = this.#memslots;
    if ((id & 0xffff) >= perSpace || id >>> 16 >= spaces) {
      throw outOfRange(name, `an id below ${perSpace} (KVM_CAP_NR_MEMSLOTS)${spaces > 1 ? `, plus an address space below ${spaces} << 16` : ''}`, id);
    }
    return id;
  }

  // The addon keeps the one record of the slots; this mirrors it whenever
  // it changed (added, moved, re-flagged, deleted, dropped by a run).
  #sync(): void {
    const generation = this.native.slotGeneration;
    if (generation === this.#generation) return;
    const live = new Map(this.native.slots().map((info) => [info.id, info]));
    for (const [id, slot] of [...this.#slots]) {
      const info = live.get(id);
      if (info === undefined || info.userspaceAddr !== slot.userspaceAddr) slot.markDeleted();
      else slot.refresh(info);
    }
    for (const info of live.values()) {
      if (this.#slots.has(info.id)) continue;
      const memory = info.memory;
      const slot = new MemorySlot(
        this.native,
        { id: info.id, memory, offset: info.offset, size: info.size, gpa: info.guestPhysAddr, flags: info.flags, hva: info.userspaceAddr },
        (s) => this.#slots.delete(s.id),
      );
      this.#slots.set(info.id, slot);
    }
    this.#generation = generation;
  }

  #freeSlotId(): number {
    let id = 0;
    while (this.#slots.has(id)) id++;
    return id;
  }
}
