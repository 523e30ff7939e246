// The rings KVM shares with userspace: coalesced MMIO/PIO zones (the VM's
// ring, seen in every vCPU's kvm_run mapping) and the per-vCPU dirty ring.
import { constants as osConstants } from 'node:os';
import { binding, type NativeVcpu, type NativeVm } from './binding';
import { Cap } from './constants';
import { argError, KvmError } from './errors';
import { PAGE_SIZE } from './memory';
import { outOfRange, own, validateBoolean, validateFunction, validateInstance, validateLength, validateObject, validateU64 } from './validate';

const R = binding.ringLayouts as Record<string, number>;
const U64_MAX = (1n << 64n) - 1n;

/** What {@link Vm.addCoalescedZone} registers. */
export interface CoalescedZoneOptions {
  /** Guest-physical address (or first port with `pio`) of the zone. */
  address: bigint | number;
  /** Bytes (or ports) in the zone, at least 1. */
  size: number;
  /** Ports (`out` instructions, `KVM_CAP_COALESCED_PIO`) rather than MMIO. Default false. */
  pio?: boolean;
}

/** A guest write that KVM queued in the coalesced ring instead of exiting. */
export interface CoalescedWrite {
  /** Guest-physical address, or the port for PIO. */
  address: bigint;
  /** Bytes written (1 to 8). */
  length: number;
  /** The bytes written (`length` of them). */
  data: Uint8Array;
  /** True for a port write. */
  pio: boolean;
}

/**
 * Called by {@link Vcpu.drainCoalesced} per queued write, in order.
 * `data` is one 8-byte buffer reused for every call (copy what you keep);
 * the write's bytes are its first `length`.
 */
export type CoalescedCallback = (address: bigint, length: number, data: Uint8Array, pio: boolean) => void;

/**
 * A coalesced MMIO or PIO zone (`KVM_REGISTER_COALESCED_MMIO`): guest
 * writes into it do not exit; KVM queues them in a ring that
 * {@link Vcpu.drainCoalesced} reads. Reads from the zone still exit (as
 * `mmio`/`io`): drain the ring before handling any exit so that writes and
 * reads stay in order. Only addresses outside every memory slot are MMIO.
 * When the ring is full (`coalescedRingSize` - 1 writes), further writes
 * exit as usual. Made by {@link Vm.addCoalescedZone}.
 */
export class CoalescedZone {
  readonly address: bigint;
  readonly size: number;
  readonly pio: boolean;
  readonly #vm: NativeVm;
  #removed = false;

  /** @internal */
  constructor(vm: NativeVm, address: bigint, size: number, pio: boolean) {
    this.#vm = vm;
    this.address = address;
    this.size = size;
    this.pio = pio;
  }

  /** True once removed (or the VM closed). */
  get removed(): boolean {
    return this.#removed || this.#vm.fd < 0;
  }

  /**
   * `KVM_UNREGISTER_COALESCED_MMIO`. KVM removes every zone inside this
   * one's range (a smaller zone registered within it too). Writes already
   * queued stay in the ring. Idempotent.
   */
  remove(): void {
    if (this.removed) return;
    this.#vm.coalescedZone(false, this.address, this.size, this.pio);
    this.#removed = true;
  }

  /** Same as {@link CoalescedZone.remove}, for `using`. */
  [Symbol.dispose](): void {
    this.remove();
  }
}

/** @internal Validates and registers; {@link Vm.addCoalescedZone} is the public face. */
export function addCoalescedZone(vm: NativeVm, options: CoalescedZoneOptions): CoalescedZone {
  const o = validateObject(options, 'options', ['address', 'size', 'pio']);
  const pio = own(o, 'pio') === undefined ? false : validateBoolean(o.pio, 'options.pio');
  const address = validateU64(own(o, 'address'), 'options.address');
  const size = validateLength(own(o, 'size'), 'options.size');
  if (size === 0 || size > 0xffffffff) throw outOfRange('options.size', '>= 1 && <= 4_294_967_295', size);
  if (pio && address + BigInt(size) > 0x10000n) throw outOfRange('options.size', 'such that address + size <= 0x10000 (the port space)', size);
  if (address + BigInt(size) > U64_MAX + 1n) throw outOfRange('options.size', 'such that address + size <= 2^64', size);
  vm.coalescedZone(true, address, size, pio);
  return new CoalescedZone(vm, address, size, pio);
}

/** How many entries the coalesced ring has (one stays free: at most this minus 1 writes are queued). */
export const coalescedRingSize: number = R.coalescedMax!;

interface RingView {
  buffer: ArrayBuffer;
  view: DataView;
  bytes: Uint8Array;
  indexes: Uint32Array; // [first, last]
  scratch: Uint8Array;
}
const ringViews = new WeakMap<NativeVcpu, RingView>();

function ringView(native: NativeVcpu, syscall: string): RingView {
  if (native.fd < 0) throw new KvmError(osConstants.errno.EBADF, syscall, 'vCPU is closed');
  const cached = ringViews.get(native);
  if (cached !== undefined && cached.buffer.byteLength > 0) return cached;
  const buffer = native.runBuffer;
  const base = R.coalescedPageOffset! * PAGE_SIZE;
  if (buffer.byteLength < base + PAGE_SIZE) {
    throw new KvmError(osConstants.errno.ENODEV, syscall, 'the vCPU mapping has no coalesced MMIO page (KVM_CAP_COALESCED_MMIO is 0)');
  }
  const v: RingView = {
    buffer,
    view: new DataView(buffer, base, PAGE_SIZE),
    bytes: new Uint8Array(buffer, base, PAGE_SIZE),
    indexes: new Uint32Array(buffer, base, 2),
    scratch: new Uint8Array(8),
  };
  ringViews.set(native, v);
  return v;
}

/** @internal {@link Vcpu.drainCoalesced}. */
export function drainCoalesced(native: NativeVcpu, callback?: CoalescedCallback): CoalescedWrite[] | number {
  const cb = callback === undefined ? undefined : (validateFunction(callback, 'callback') as CoalescedCallback);
  const ring = ringView(native, 'drainCoalesced');
  const max = coalescedRingSize;
  const out: CoalescedWrite[] = [];
  // KVM fills an entry, then moves `last` (release): load it once (acquire),
  // copy, then hand the entries back by storing `first`.
  const last = Atomics.load(ring.indexes, 1);
  let first = Atomics.load(ring.indexes, 0);
  if (first >= max || last >= max) {
    throw new KvmError(osConstants.errno.EIO, 'drainCoalesced', `the coalesced ring's indexes are out of range (first ${first}, last ${last})`);
  }
  let n = 0;
  try {
    while (first !== last) {
      const at = R.coalescedEntries! + first * R.coalescedEntrySize!;
      const address = ring.view.getBigUint64(at + R.coalescedPhysAddr!, true);
      const length = Math.min(ring.view.getUint32(at + R.coalescedLen!, true), 8);
      const pio = ring.view.getUint32(at + R.coalescedPio!, true) !== 0;
      const data = at + R.coalescedData!;
      first = (first + 1) % max;
      n++;
      if (cb === undefined) {
        out.push({ address, length, data: ring.bytes.slice(data, data + length), pio });
      } else {
        for (let i = 0; i < 8; i++) ring.scratch[i] = i < length ? ring.bytes[data + i]! : 0;
        cb(address, length, ring.scratch, pio);
      }
    }
  } finally {
    Atomics.store(ring.indexes, 0, first);
  }
  return cb === undefined ? out : n;
}

/** One page the guest dirtied, from the dirty ring. */
export interface DirtyGfn {
  /** The slot: address space << 16 | slot id, as in {@link MemorySlot.id}. */
  slot: number;
  /** The page's index in the slot (guest frame number minus the slot's first). */
  offset: bigint;
}

const harvestScratch = new WeakMap<NativeVcpu, { slots: Uint32Array; offsets: BigUint64Array }>();

function requireRing(vm: NativeVm, syscall: string): number {
  const bytes = vm.dirtyRingBytes;
  if (bytes === 0) throw argError(`the VM has no dirty ring; call vm.enableDirtyRing() before creating vCPUs (${syscall})`);
  return bytes;
}

/** @internal {@link Vcpu.harvestDirtyRingInto}. */
export function harvestDirtyRingInto(native: NativeVcpu, vm: NativeVm, slots: Uint32Array, offsets: BigUint64Array): number {
  validateInstance(slots, 'slots', Uint32Array);
  validateInstance(offsets, 'offsets', BigUint64Array);
  if (native.fd < 0) throw new KvmError(osConstants.errno.EBADF, 'harvestDirtyRing', 'vCPU is closed');
  requireRing(vm, 'harvestDirtyRing');
  return native.harvestDirtyRing(slots, offsets);
}

/** @internal {@link Vcpu.harvestDirtyRing}. */
export function harvestDirtyRing(native: NativeVcpu, vm: NativeVm): DirtyGfn[] {
  if (native.fd < 0) throw new KvmError(osConstants.errno.EBADF, 'harvestDirtyRing', 'vCPU is closed');
  const entries = requireRing(vm, 'harvestDirtyRing') / R.dirtyGfnSize!;
  let s = harvestScratch.get(native);
  if (s === undefined) {
    const n = Math.min(entries, 4096);
    s = { slots: new Uint32Array(n), offsets: new BigUint64Array(n) };
    harvestScratch.set(native, s);
  }
  const out: DirtyGfn[] = [];
  for (;;) {
    const n = native.harvestDirtyRing(s.slots, s.offsets);
    for (let i = 0; i < n; i++) out.push({ slot: s.slots[i]!, offset: s.offsets[i]! });
    if (n < s.slots.length) return out;
  }
}

/** @internal Validates {@link Vm.enableDirtyRing}'s size against this KVM; returns whether to use the ACQ_REL form. */
export function checkDirtyRingSize(vm: NativeVm, bytes: number, name: string): boolean {
  const max = vm.checkExtension(Cap.DIRTY_LOG_RING); // KVM_CAP_DIRTY_LOG_RING: the largest ring, in bytes
  const acqRelMax = vm.checkExtension(Cap.DIRTY_LOG_RING_ACQ_REL);
  const limit = Math.max(max, acqRelMax);
  if (limit === 0) {
    throw new KvmError(osConstants.errno.EINVAL, 'KVM_ENABLE_CAP', 'this KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING is 0)');
  }
  if (bytes < PAGE_SIZE || bytes > limit || (bytes & (bytes - 1)) !== 0) {
    throw outOfRange(name, `a power of two >= ${PAGE_SIZE} && <= ${limit} (KVM_CAP_DIRTY_LOG_RING)`, bytes);
  }
  return acqRelMax !== 0;
}
