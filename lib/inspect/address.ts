// Guest-physical -> slot -> host-virtual -> host-physical, the way KVM and
// the host kernel resolve it.
import { openSync, readSync, closeSync } from 'node:fs';
import { PAGE_SIZE } from '../core/memory';
import { KvmError } from '../core/errors';
import { validateInstance, validateU64 } from '../core/validate';
import type { MemorySlot } from '../core/slot';
import { Vm } from '../core/vm';

const PAGE = BigInt(PAGE_SIZE);
const SHIFT = BigInt(Math.log2(PAGE_SIZE));

/** What `/proc/self/pagemap` says about one host page. */
export interface HostPage {
  hva: bigint;
  /** The page is in RAM (the process has touched it). */
  present: boolean;
  swapped: boolean;
  /** Host frame number; null when unknown (see `reason`). */
  pfn: bigint | null;
  /** Host-physical address of `hva`; null when unknown. */
  hpa: bigint | null;
  /** Why `pfn` is null. */
  reason?: string;
}

/**
 * Reads `/proc/self/pagemap` for a host virtual address of this process.
 * Frame numbers need CAP_SYS_ADMIN; without it the kernel reports 0, and
 * this says so instead of returning 0.
 */
export function hvaToHpa(hva: bigint): HostPage {
  hva = validateU64(hva, 'hva');
  const entry = Buffer.alloc(8);
  try {
    const fd = openSync('/proc/self/pagemap', 'r');
    try {
      // A bigint position: past 2^53 a number would be rounded.
      readSync(fd, entry, 0, 8, (hva >> SHIFT) * 8n);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (typeof err.errno === 'number' && typeof err.syscall === 'string') throw new KvmError(Math.abs(err.errno), err.syscall, '/proc/self/pagemap');
    throw e;
  }
  const v = entry.readBigUInt64LE(0);
  const present = (v >> 63n) & 1n ? true : false;
  const swapped = (v >> 62n) & 1n ? true : false;
  const pfn = v & ((1n << 55n) - 1n);
  if (!present) return { hva, present, swapped, pfn: null, hpa: null, reason: swapped ? 'the page is swapped out' : 'the page is not in RAM yet (never touched)' };
  if (pfn === 0n) {
    return { hva, present, swapped, pfn: null, hpa: null, reason: 'frame numbers in /proc/self/pagemap need CAP_SYS_ADMIN (run as root)' };
  }
  return { hva, present, swapped, pfn, hpa: (pfn << SHIFT) | (hva & (PAGE - 1n)) };
}

/** The whole chain for one guest-physical address. */
export interface AddressChain {
  gpa: bigint;
  gfn: bigint;
  /** The slot holding it; undefined means guest accesses exit as MMIO. */
  slot?: MemorySlot;
  /** `userspace_addr + (gfn - base_gfn) * 4096 + offset`. */
  hva?: bigint;
  host?: HostPage;
}

/**
 * GPA -> slot -> HVA -> HPA in one call: the slot holding `gpa`, the host
 * virtual address KVM computes ({@link MemorySlot.hvaOf}), and the host frame
 * behind it from `/proc/self/pagemap`.
 */
export function resolveGpa(vm: Vm, gpa: bigint | number): AddressChain {
  validateInstance(vm, 'vm', Vm);
  const a = validateU64(gpa, 'gpa');
  const slot = vm.findSlot(a);
  const chain: AddressChain = { gpa: a, gfn: a >> SHIFT };
  if (!slot) return chain;
  const hva = slot.hvaOf(a);
  return { ...chain, slot, hva, host: hvaToHpa(hva) };
}
