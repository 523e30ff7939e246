import { gpaToHva, resolveGpa, type AddressChain } from './address';
import { binding, type NativeVm } from './binding';
import { Cap } from './constants';
import { KvmStats } from './stats';
import type { Kvm } from './kvm';
import { argError } from './errors';
import type { GuestMemory } from './memory';
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
  #nextVcpuId = 0;
  #manualProtect = false;

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
    return this.native.checkExtension(cap);
  }

  /** Sets the 3-page TSS area that Intel hosts need for real mode (`KVM_SET_TSS_ADDR`). */
  setTssAddr(address: bigint | number): void {
    this.native.setTssAddr(address);
  }

  /** Sets the identity-map page that Intel hosts need for real mode (`KVM_SET_IDENTITY_MAP_ADDR`). */
  setIdentityMapAddr(address: bigint | number): void {
    this.native.setIdentityMapAddr(address);
  }

  /**
   * Maps memory into guest-physical space (`KVM_SET_USER_MEMORY_REGION`).
   * Errors come from the kernel as `KvmError`: `EEXIST` for an overlap,
   * `EINVAL` for an unaligned address or size.
   */
  addSlot(options: SlotOptions): MemorySlot {
    const offset = options.offset ?? 0;
    const size = options.size ?? options.memory.size - offset;
    if (!Number.isSafeInteger(offset) || offset < 0) throw argError(`offset must be a non-negative integer, got ${offset}`);
    if (!Number.isSafeInteger(size) || size <= 0) throw argError(`size must be a positive integer, got ${size}`);
    const id = options.slot ?? this.#freeSlotId();
    if (this.#slots.has(id)) throw argError(`slot ${id} is in use; use its move() or setFlags(), or delete() it first`);
    const flags = options.flags ?? 0;
    const gpa = BigInt(options.guestPhysAddr);
    const hva = this.native.setUserMemoryRegion(id, flags, gpa, size, options.memory.native, offset);
    const slot = new MemorySlot(
      this.native,
      { id, memory: options.memory, offset, size, gpa, flags, hva },
      (s) => this.#slots.delete(s.id),
    );
    this.#slots.set(id, slot);
    return slot;
  }

  /** The registered slots, by id. */
  get slots(): MemorySlot[] {
    const live = new Set(this.native.fd >= 0 ? this.native.slotIds() : []);
    for (const s of [...this.#slots.values()]) if (!live.has(s.id)) s.markDeleted();
    return [...this.#slots.values()].sort((a, b) => a.id - b.id);
  }

  /** The slot that holds a guest-physical address, or undefined: such accesses exit as MMIO. */
  findSlot(gpa: bigint | number): MemorySlot | undefined {
    // Hot (page-table building calls it per entry): no sorting, no native call.
    for (const s of this.#slots.values()) if (s.contains(gpa)) return s;
    return undefined;
  }

  /**
   * A view of guest-physical memory `[gpa, gpa + length)`, in place: what
   * the guest reads and writes. The range must lie in one slot.
   */
  memoryAt(gpa: bigint | number, length: number): Uint8Array {
    const slot = this.findSlot(gpa);
    const offset = slot === undefined ? -1 : Number(BigInt(gpa) - slot.guestPhysAddr);
    if (slot === undefined || offset + length > slot.size) {
      throw argError(
        `guest-physical range 0x${BigInt(gpa).toString(16)}+0x${length.toString(16)} is not inside one memory slot`,
      );
    }
    return slot.bytes.subarray(offset, offset + length);
  }

  /**
   * The host virtual address behind a guest-physical one, as KVM computes
   * it: `userspace_addr + (gfn - base_gfn) * 4096 + offset`. Undefined
   * outside every slot (such accesses exit as MMIO).
   */
  gpaToHva(gpa: bigint | number): bigint | undefined {
    return gpaToHva(this, gpa);
  }

  /** GPA -> slot -> HVA -> HPA (the last through `/proc/self/pagemap`) in one call. */
  resolveGpa(gpa: bigint | number): AddressChain {
    return resolveGpa(this, gpa);
  }

  /** Opens the VM's binary statistics (`KVM_GET_STATS_FD`): `pages_4k`, `pages_2m`, `pages_1g`, `mmu_*`... */
  openStats(): KvmStats {
    return new KvmStats(this.native.getStatsFd());
  }

  /** `KVM_ENABLE_CAP` on the VM; returns the ioctl's result. */
  enableCap(cap: number, args: (bigint | number)[] = []): number {
    return this.native.enableCap(cap, args);
  }

  /**
   * Switches dirty logging to manual protection
   * (`KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2`): reading the log no longer
   * clears it; {@link MemorySlot.clearDirtyLog} does. With
   * `initiallySet`, a new dirty-logging slot starts all dirty. Call it
   * before adding dirty-logging slots.
   */
  enableManualDirtyLogProtect(options: { initiallySet?: boolean } = {}): void {
    const C = binding.constants;
    const flags = (C.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE ?? 1) | (options.initiallySet ? C.KVM_DIRTY_LOG_INITIALLY_SET ?? 2 : 0);
    this.enableCap(Cap.MANUAL_DIRTY_LOG_PROTECT2, [flags]);
    this.#manualProtect = true;
  }

  /** True after {@link Vm.enableManualDirtyLogProtect}. */
  get manualDirtyLogProtect(): boolean {
    return this.#manualProtect;
  }

  /** Creates a vCPU (`KVM_CREATE_VCPU`); ids default to 0, 1, 2... */
  createVcpu(id?: number): Vcpu {
    const vcpuId = id ?? this.#nextVcpuId;
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

  #freeSlotId(): number {
    let id = 0;
    while (this.#slots.has(id)) id++;
    return id;
  }
}
