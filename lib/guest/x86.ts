// x86 architectural constants and encoders for what a guest needs before
// its first instruction: segment descriptors and the GDT.
import type { Segment } from '../core/regs';
import { own, validateObject, validateU16, validateU32, validateU64, validateU8 } from '../core/validate';

/** CR0 bits. */
export const CR0 = {
  PE: 1n << 0n, // protection enable
  MP: 1n << 1n,
  EM: 1n << 2n,
  TS: 1n << 3n,
  ET: 1n << 4n,
  NE: 1n << 5n,
  WP: 1n << 16n, // write protect, also at CPL0
  AM: 1n << 18n,
  NW: 1n << 29n,
  CD: 1n << 30n,
  PG: 1n << 31n, // paging
} as const;

/** CR4 bits. */
export const CR4 = {
  VME: 1n << 0n,
  PVI: 1n << 1n,
  TSD: 1n << 2n,
  DE: 1n << 3n,
  PSE: 1n << 4n, // 4 MiB pages in 32-bit paging
  PAE: 1n << 5n, // required by long mode
  MCE: 1n << 6n,
  PGE: 1n << 7n,
  PCE: 1n << 8n,
  OSFXSR: 1n << 9n,
  OSXMMEXCPT: 1n << 10n,
  UMIP: 1n << 11n,
  LA57: 1n << 12n,
  FSGSBASE: 1n << 16n,
  PCIDE: 1n << 17n,
  OSXSAVE: 1n << 18n,
  SMEP: 1n << 20n,
  SMAP: 1n << 21n,
} as const;

/** EFER (MSR 0xC0000080) bits. */
export const EFER = {
  SCE: 1n << 0n,
  LME: 1n << 8n, // long mode enable
  LMA: 1n << 10n, // long mode active
  NXE: 1n << 11n,
} as const;

/** A segment as the GDT describes it; fields as in `struct kvm_segment`. */
export type SegmentDescriptor = Omit<Segment, 'selector' | 'unusable'>;

/** Encodes a segment descriptor into its 8-byte GDT form. */
export function encodeDescriptor(d: SegmentDescriptor): bigint {
  d = validateDescriptor(d, 'd');
  const base = d.base & 0xffffffffn;
  const limit = BigInt(d.limit >>> 0) & 0xfffffn;
  const access =
    BigInt(d.type & 0xf) | (BigInt(d.s & 1) << 4n) | (BigInt(d.dpl & 3) << 5n) | (BigInt(d.present & 1) << 7n);
  const flags = BigInt(d.avl & 1) | (BigInt(d.l & 1) << 1n) | (BigInt(d.db & 1) << 2n) | (BigInt(d.g & 1) << 3n);
  return (
    (limit & 0xffffn) |
    ((base & 0xffffffn) << 16n) |
    (access << 40n) |
    ((limit >> 16n) << 48n) |
    (flags << 52n) |
    ((base >> 24n) << 56n)
  );
}

/** Decodes an 8-byte GDT entry (the inverse of {@link encodeDescriptor}). */
export function decodeDescriptor(raw: bigint): SegmentDescriptor {
  raw = validateU64(raw, 'raw');
  const access = Number((raw >> 40n) & 0xffn);
  const flags = Number((raw >> 52n) & 0xfn);
  return {
    base: ((raw >> 16n) & 0xffffffn) | (((raw >> 56n) & 0xffn) << 24n),
    limit: Number((raw & 0xffffn) | (((raw >> 48n) & 0xfn) << 16n)),
    type: access & 0xf,
    s: (access >> 4) & 1,
    dpl: (access >> 5) & 3,
    present: (access >> 7) & 1,
    avl: flags & 1,
    l: (flags >> 1) & 1,
    db: (flags >> 2) & 1,
    g: (flags >> 3) & 1,
  };
}

/** The `kvm_segment` a segment register holds after loading `selector` with this descriptor. */
export function segmentFor(selector: number, d: SegmentDescriptor): Segment {
  validateU16(selector, 'selector');
  d = validateDescriptor(d, 'd');
  // The hidden limit is in bytes: a 4 KiB-granular limit is scaled.
  const limit = d.g ? ((d.limit << 12) | 0xfff) >>> 0 : d.limit;
  return { ...d, limit, selector, unusable: 0 };
}

const DESCRIPTOR_BITS = { type: 15, s: 1, dpl: 3, present: 1, avl: 1, l: 1, db: 1, g: 1 } as const;

// Every field is required: a descriptor has no "current value" to keep.
// A full Segment (with selector and unusable) is accepted too.
function validateDescriptor(d: unknown, name: string): SegmentDescriptor {
  const o = validateObject(d, name, ['base', 'limit', ...Object.keys(DESCRIPTOR_BITS), 'selector', 'unusable']);
  const out: Record<string, number | bigint> = {
    base: validateU64(own(o, 'base'), `${name}.base`, 0xffffffffn),
    limit: validateU32(own(o, 'limit'), `${name}.limit`, 0xfffff),
  };
  for (const [k, max] of Object.entries(DESCRIPTOR_BITS)) out[k] = validateU8(own(o, k), `${name}.${k}`, max);
  return out as unknown as SegmentDescriptor;
}

const CODE = 0xb; // execute/read, accessed
const DATA = 0x3; // read/write, accessed
const flat = { base: 0n, limit: 0xfffff, s: 1, dpl: 0, present: 1, avl: 0, g: 1 };

/** Flat 4 GiB descriptors, at the selectors a {@link flatGdt} places them. */
export const FLAT = {
  code32: { ...flat, type: CODE, l: 0, db: 1 } as SegmentDescriptor,
  code64: { ...flat, type: CODE, l: 1, db: 0 } as SegmentDescriptor,
  data: { ...flat, type: DATA, l: 0, db: 1 } as SegmentDescriptor,
} as const;

/** Selectors of the flat GDT: null, 32-bit code, 64-bit code, data. */
export const SELECTOR = { code32: 0x08, code64: 0x10, data: 0x18 } as const;

/** The flat GDT's bytes: null, 32-bit code, 64-bit code and data descriptors. */
export function flatGdt(): Uint8Array {
  const bytes = new Uint8Array(32);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(SELECTOR.code32, encodeDescriptor(FLAT.code32), true);
  view.setBigUint64(SELECTOR.code64, encodeDescriptor(FLAT.code64), true);
  view.setBigUint64(SELECTOR.data, encodeDescriptor(FLAT.data), true);
  return bytes;
}
