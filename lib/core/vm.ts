import { binding, type NativeVm } from './binding';
import { Cap } from './constants';
import { KvmStats } from './stats';
import type { Kvm } from './kvm';
import { argError, KvmError } from './errors';
import { GuestMemory, PAGE_SIZE } from './memory';
import { constants } from 'node:os';
import { MemFlag } from './constants';
import { invalidArgValue, outOfRange, own, validateAligned, validateArray, validateBoolean, validateInstance, validateLength, validateObject, validateOptions, validateU32, validateU64 } from './validate';
import { MemorySlot } from './slot';
import { Vcpu } from './vcpu';

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
  /** Slot id; default: the lowest free one. */
  slot?: number;
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
  #generation = -1;
  #nextVcpuId = 0;
  #manualProtect = false;
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
    const o = validateObject(options, 'options', ['guestPhysAddr', 'memory', 'offset', 'size', 'flags', 'slot']);
    const memory = validateInstance(own(o, 'memory'), 'options.memory', GuestMemory);
    const gpa = validateU64(own(o, 'guestPhysAddr'), 'options.guestPhysAddr');
    validateAligned(gpa, 'options.guestPhysAddr', PAGE_SIZE, `a multiple of ${PAGE_SIZE}`);
    const offset = own(o, 'offset') === undefined ? 0 : validateLength(o.offset, 'options.offset');
    validateAligned(offset, 'options.offset', PAGE_SIZE, `a multiple of ${PAGE_SIZE}`);
    if (memory.closed) throw new KvmError(constants.errno.EBADF, 'KVM_SET_USER_MEMORY_REGION', 'the memory is closed');
    if (offset >= memory.size) throw outOfRange('options.offset', `< the memory's size (${memory.size})`, offset);
    const size = own(o, 'size') === undefined ? memory.size - offset : validateLength(o.size, 'options.size');
    if (size === 0 || size % PAGE_SIZE !== 0) throw outOfRange('options.size', `a positive multiple of ${PAGE_SIZE}`, size);
    if (offset + size > memory.size) {
      throw outOfRange('options.size', `<= ${memory.size - offset} (the memory's size minus options.offset)`, size);
    }
    if (gpa + BigInt(size) > 1n << 64n) throw outOfRange('options.size', 'such that guestPhysAddr + size <= 2^64', size);
    const flags = own(o, 'flags') === undefined ? 0 : validateU32(o.flags, 'options.flags');
    if (flags & ~(MemFlag.LOG_DIRTY_PAGES | MemFlag.READONLY)) {
      throw invalidArgValue('options.flags', flags, 'must combine MemFlag.LOG_DIRTY_PAGES and MemFlag.READONLY only');
    }
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
    this.native.setUserMemoryRegion(id, flags, gpa, size, memory.native, offset);
    this.#sync();
    return this.#slots.get(id)!;
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

  /** Creates a vCPU (`KVM_CREATE_VCPU`); ids default to 0, 1, 2... */
  createVcpu(id?: number): Vcpu {
    const vcpuId = id === undefined ? this.#nextVcpuId : validateU32(id, 'id');
    // KVM refuses ids at or above KVM_CAP_MAX_VCPU_ID (128), else MAX_VCPUS.
    this.#maxVcpuId ??= this.native.checkExtension(128) || this.native.checkExtension(Cap.MAX_VCPUS) || 0x100000000;
    if (vcpuId >= this.#maxVcpuId) throw outOfRange('id', `< ${this.#maxVcpuId} (KVM_CAP_MAX_VCPU_ID)`, vcpuId);
    const vcpu = new Vcpu(this.native.createVcpu(vcpuId), this);
    this.#nextVcpuId = Math.max(this.#nextVcpuId, vcpuId + 1);
    return vcpu;
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
      const memory = GuestMemory.fromNative(info.memory);
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
