import type { NativeVm } from './binding';
import { MemFlag } from './constants';
import { bitmapBytes, CHECKED, DirtyLog } from './dirty';
import { argError, KvmError } from './errors';
import { constants } from 'node:os';
import { invalidArgValue, outOfRange, validateAligned, validateInstance, validateLength, validateU32, validateU64, validateUint8Array } from './validate';
import type { GuestMemory } from './memory';
import { PAGE_SIZE, type MAX_VIEW } from './memory';

const PAGE_SHIFT = BigInt(Math.log2(PAGE_SIZE));

/** @internal `flags`, checked to be flags a caller may give a slot. */
export function validateSlotFlags(flags: unknown, name: string): number {
  const f = validateU32(flags, name);
  if (f & ~(MemFlag.LOG_DIRTY_PAGES | MemFlag.READONLY)) {
    throw invalidArgValue(name, f, 'must combine MemFlag.LOG_DIRTY_PAGES and MemFlag.READONLY only');
  }
  return f;
}

/**
 * A registered memory slot, mirroring the kernel's `struct kvm_memory_slot`:
 * guest-physical pages `baseGfn .. baseGfn + npages - 1` are the host pages
 * at `userspaceAddr`. Made by {@link Vm.addSlot}.
 */
export class MemorySlot {
  /** Slot number (`id` in the kernel; `slot` in the ioctl). */
  readonly id: number;
  /** The memory behind the slot. */
  readonly memory: GuestMemory;
  /** Byte offset of the slot's first page in {@link MemorySlot.memory}. */
  readonly offset: number;
  /** Number of 4 KiB pages. */
  readonly npages: number;
  /** Host virtual address of the first page, as given to KVM. */
  readonly userspaceAddr: bigint;
  #gpa: bigint;
  #flags: number;
  #deleted = false;
  readonly #vm: NativeVm;
  readonly #onDelete: (slot: MemorySlot) => void;

  /** @internal */
  constructor(
    vm: NativeVm,
    init: { id: number; memory: GuestMemory; offset: number; size: number; gpa: bigint; flags: number; hva: bigint },
    onDelete: (slot: MemorySlot) => void,
  ) {
    this.#vm = vm;
    this.#onDelete = onDelete;
    this.id = init.id;
    this.memory = init.memory;
    this.offset = init.offset;
    this.npages = init.size / PAGE_SIZE;
    this.userspaceAddr = init.hva;
    this.#gpa = init.gpa;
    this.#flags = init.flags;
  }

  /** First guest frame number: guest-physical address >> 12. */
  get baseGfn(): bigint {
    return this.#gpa >> PAGE_SHIFT;
  }

  /** Guest-physical address of the first byte. */
  get guestPhysAddr(): bigint {
    return this.#gpa;
  }

  /** Size in bytes. */
  get size(): number {
    return this.npages * PAGE_SIZE;
  }

  /** `KVM_MEM_*` flags ({@link MemFlag}). */
  get flags(): number {
    return this.#flags;
  }

  /** True once {@link MemorySlot.delete} succeeded or the VM closed. */
  get deleted(): boolean {
    return this.#deleted;
  }

  /**
   * The host virtual address KVM uses for a guest-physical address in this
   * slot: `userspace_addr + (gfn - base_gfn) * 4096 + offset`.
   */
  hvaOf(gpa: bigint | number): bigint {
    const a = validateU64(gpa, 'gpa');
    if (!this.contains(a)) throw outOfRange('gpa', `inside slot ${this.id} (0x${this.guestPhysAddr.toString(16)}-0x${(this.guestPhysAddr + BigInt(this.size) - 1n).toString(16)})`, a);
    return this.userspaceAddr + ((a >> PAGE_SHIFT) - this.baseGfn) * BigInt(PAGE_SIZE) + (a & BigInt(PAGE_SIZE - 1));
  }

  /** Whether a guest-physical address falls inside this slot. */
  contains(gpa: bigint | number): boolean {
    const a = validateU64(gpa, 'gpa');
    return a >= this.#gpa && a < this.#gpa + BigInt(this.size);
  }

  /** The bytes of this slot, viewed in place (at most {@link MAX_VIEW}: see {@link MemorySlot.view}). */
  get bytes(): Uint8Array {
    return this.memory.view(this.offset, this.size);
  }

  /** `length` bytes of this slot from byte `offset`, viewed in place; works for slots of any size. */
  view(offset: number, length: number): Uint8Array {
    validateLength(offset, 'offset');
    validateLength(length, 'length');
    if (offset > this.size || length > this.size - offset) {
      throw outOfRange('length', `<= ${Math.max(this.size - offset, 0)} (the slot's bytes after offset)`, length);
    }
    return this.memory.view(this.offset + offset, length);
  }

  /** Moves the slot to another guest-physical address (KVM_MR_MOVE); the memory stays. */
  move(guestPhysAddr: bigint | number): void {
    const gpa = validateU64(guestPhysAddr, 'guestPhysAddr');
    validateAligned(gpa, 'guestPhysAddr', PAGE_SIZE, `a multiple of ${PAGE_SIZE}`);
    if (gpa + BigInt(this.size) > 1n << 64n) throw outOfRange('guestPhysAddr', `<= 2^64 - ${this.size} (the slot's size)`, gpa);
    this.#update(gpa, this.#flags);
  }

  /** Changes the slot's flags, for example to start dirty logging (KVM_MR_FLAGS_ONLY). */
  setFlags(flags: number): void {
    validateSlotFlags(flags, 'flags');
    if ((flags ^ this.#flags) & MemFlag.READONLY) {
      // The kernel answers EINVAL (KVM_MR_FLAGS_ONLY may not touch READONLY).
      throw invalidArgValue('flags', flags, `cannot add or remove MemFlag.READONLY on a live slot (KVM refuses it); delete() slot ${this.id} and addSlot() it again with the new flags`);
    }
    this.#update(this.#gpa, flags);
  }

  /**
   * `KVM_GET_DIRTY_LOG`: which pages the guest wrote since logging began or
   * the last read (without manual protection, reading also resets the log;
   * with it, {@link MemorySlot.clearDirtyLog} does). Needs the
   * `LOG_DIRTY_PAGES` flag. Give `into` (at least
   * `DirtyLog.bytesFor(npages)` bytes) to reuse one bitmap across reads:
   * the log then views it, until the next read overwrites it.
   */
  getDirtyLog(into?: Uint8Array): DirtyLog {
    if (!(this.#flags & MemFlag.LOG_DIRTY_PAGES)) {
      throw argError(`slot ${this.id} does not log dirty pages; add MemFlag.LOG_DIRTY_PAGES with setFlags()`);
    }
    const bytes = bitmapBytes(this.npages);
    let bitmap: Uint8Array;
    if (into === undefined) {
      // KVM writes every byte of the bitmap: no need to zero it first.
      const b = Buffer.allocUnsafeSlow(bytes);
      bitmap = new Uint8Array(b.buffer, b.byteOffset, bytes);
    } else {
      // A caller's buffer, reused from call to call: no allocation per read.
      validateUint8Array(into, 'into');
      if (into.byteLength < bytes) throw outOfRange('into.byteLength', `>= ${bytes} (DirtyLog.bytesFor(npages))`, into.byteLength);
      bitmap = into.byteLength === bytes ? into : into.subarray(0, bytes);
    }
    this.#vm.getDirtyLog(this.id, bitmap);
    return new DirtyLog(this.id, this.baseGfn, this.npages, bitmap, CHECKED);
  }

  /**
   * `KVM_CLEAR_DIRTY_LOG` (manual protection, see
   * {@link Vm.enableManualDirtyLogProtect}): clears and write-protects again
   * the pages set in `log`, or every page. A cleared page stays clean until
   * the guest writes it again.
   */
  clearDirtyLog(log?: DirtyLog): void {
    if (log !== undefined) {
      validateInstance(log, 'log', DirtyLog);
      if (log.slot !== this.id || log.npages !== this.npages) {
        throw invalidArgValue('log', log, `is not a log of this slot (slot ${this.id}, ${this.npages} pages)`);
      }
    }
    const bitmap = log?.bitmap ?? new Uint8Array(DirtyLog.bytesFor(this.npages)).fill(0xff);
    this.#vm.clearDirtyLog(this.id, 0, this.npages, bitmap);
  }

  /** Removes the slot from the VM (size 0); the memory is no longer pinned by it. */
  delete(): void {
    if (this.#deleted) return;
    this.#vm.setUserMemoryRegion(this.id, 0, this.#gpa, 0);
    this.#markDeleted();
  }

  /** @internal The addon's record of this slot changed (a move or new flags). */
  refresh(info: { guestPhysAddr: bigint; flags: number }): void {
    this.#gpa = info.guestPhysAddr;
    this.#flags = info.flags;
  }

  /** @internal */
  markDeleted(): void {
    this.#markDeleted();
  }

  #markDeleted(): void {
    this.#deleted = true;
    this.#onDelete(this);
  }

  #update(gpa: bigint, flags: number): void {
    if (this.#deleted) throw new KvmError(constants.errno.EBADF, 'KVM_SET_USER_MEMORY_REGION', `slot ${this.id} was deleted, so it is closed`);
    this.#vm.setUserMemoryRegion(this.id, flags, gpa, this.size, this.memory.native.slot, this.offset, this.memory);
    this.#gpa = gpa;
    this.#flags = flags;
  }
}
