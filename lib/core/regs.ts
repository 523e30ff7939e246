import { binding } from './binding';
import { outOfRange, own, validateArray, validateObject, validateU16, validateU32, validateU64, validateU8 } from './validate';

/** General-purpose registers (`struct kvm_regs`); 64-bit values are bigints. */
export interface Regs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

/** What {@link Vcpu.setRegs} accepts: any subset, as bigint or safe integer. */
export type RegsInput = { [K in keyof Regs]?: bigint | number };

/** A segment register (`struct kvm_segment`): hidden part included. */
export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  /** Descriptor type (bits 8-11 of the access byte). */
  type: number;
  present: number;
  dpl: number;
  /** Default operation size: 1 for 32-bit segments. */
  db: number;
  /** 1 for a code/data segment, 0 for a system one. */
  s: number;
  /** 1 for a 64-bit code segment. */
  l: number;
  /** Granularity: 1 when the limit counts 4 KiB units. */
  g: number;
  avl: number;
  unusable: number;
}

/** A descriptor table register (GDTR/IDTR, `struct kvm_dtable`). */
export interface DescriptorTable {
  base: bigint;
  limit: number;
}

/** Special registers (`struct kvm_sregs`). */
export interface Sregs {
  cs: Segment; ds: Segment; es: Segment; fs: Segment; gs: Segment; ss: Segment;
  tr: Segment; ldt: Segment;
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint;
  apicBase: bigint;
  /** Pending external interrupts, 256 bits. */
  interruptBitmap: [bigint, bigint, bigint, bigint];
}

/** A struct whose bigint fields also take safe integers. */
export type Numeric<T> = { [K in keyof T]?: T[K] extends bigint ? bigint | number : T[K] };

/**
 * What {@link Vcpu.setSregs} accepts: any subset, down to single segment
 * fields; what is left out keeps its current value.
 */
export type SregsInput = {
  [K in keyof Sregs]?: Sregs[K] extends Segment | DescriptorTable ? Numeric<Sregs[K]> : Sregs[K] | number;
};

const REG_NAMES = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags',
] as const;
const SEGMENT_NAMES = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;
const CONTROL_NAMES = ['cr0', 'cr2', 'cr3', 'cr4', 'cr8', 'efer', 'apicBase'] as const;
/** Bit fields of `struct kvm_segment` and their largest values. */
const SEGMENT_BITS = { type: 15, present: 1, dpl: 3, db: 1, s: 1, l: 1, g: 1, avl: 1, unusable: 1 } as const;
const SEGMENT_KEYS = ['base', 'limit', 'selector', ...Object.keys(SEGMENT_BITS)];
const SREGS_KEYS = [...SEGMENT_NAMES, 'gdt', 'idt', ...CONTROL_NAMES, 'interruptBitmap'];

type Offsets = Record<string, number>;
const LAYOUTS = binding.stateLayouts as Record<string, Offsets>;
const SREGS = LAYOUTS.sregs!;
const SEG = LAYOUTS.segment!;
const DT = LAYOUTS.dtable!;
/** @internal The size of `struct kvm_sregs`. */
export const SREGS_SIZE = SREGS.size!;

function segmentAt(v: DataView, o: number): Segment {
  return {
    base: v.getBigUint64(o + SEG.base!, true),
    limit: v.getUint32(o + SEG.limit!, true),
    selector: v.getUint16(o + SEG.selector!, true),
    type: v.getUint8(o + SEG.type!),
    present: v.getUint8(o + SEG.present!),
    dpl: v.getUint8(o + SEG.dpl!),
    db: v.getUint8(o + SEG.db!),
    s: v.getUint8(o + SEG.s!),
    l: v.getUint8(o + SEG.l!),
    g: v.getUint8(o + SEG.g!),
    avl: v.getUint8(o + SEG.avl!),
    unusable: v.getUint8(o + SEG.unusable!),
  };
}

function dtableAt(v: DataView, o: number): DescriptorTable {
  return { base: v.getBigUint64(o + DT.base!, true), limit: v.getUint16(o + DT.limit!, true) };
}

/** @internal Decodes the `struct kvm_sregs` at byte `at` of `b`. */
export function decodeSregs(b: Uint8Array, at = 0): Sregs {
  const v = new DataView(b.buffer, b.byteOffset + at, SREGS_SIZE);
  const u64 = (field: string) => v.getBigUint64(SREGS[field]!, true);
  const bitmap = SREGS.interruptBitmap!;
  return {
    cs: segmentAt(v, SREGS.cs!), ds: segmentAt(v, SREGS.ds!), es: segmentAt(v, SREGS.es!),
    fs: segmentAt(v, SREGS.fs!), gs: segmentAt(v, SREGS.gs!), ss: segmentAt(v, SREGS.ss!),
    tr: segmentAt(v, SREGS.tr!), ldt: segmentAt(v, SREGS.ldt!),
    gdt: dtableAt(v, SREGS.gdt!), idt: dtableAt(v, SREGS.idt!),
    cr0: u64('cr0'), cr2: u64('cr2'), cr3: u64('cr3'), cr4: u64('cr4'), cr8: u64('cr8'),
    efer: u64('efer'), apicBase: u64('apicBase'),
    interruptBitmap: [
      v.getBigUint64(bitmap, true), v.getBigUint64(bitmap + 8, true),
      v.getBigUint64(bitmap + 16, true), v.getBigUint64(bitmap + 24, true),
    ],
  };
}

/**
 * @internal Writes what `sregs` (checked by {@link validateSregs}) names
 * over the `struct kvm_sregs` at byte `at` of `b`; the rest stays. With
 * `mask` (laid out as `b`), sets 0xff over each byte written.
 */
export function encodeSregs(b: Uint8Array, sregs: SregsInput, at = 0, mask?: Uint8Array): void {
  const v = new DataView(b.buffer, b.byteOffset + at, SREGS_SIZE);
  const mark = mask === undefined ? undefined : (o: number, n: number) => mask.fill(0xff, at + o, at + o + n);
  const u64 = (o: number, x: bigint | number) => {
    v.setBigUint64(o, BigInt(x), true);
    mark?.(o, 8);
  };
  // The checked copy holds only what was given: walk its keys, not every name.
  const s = sregs as Record<string, unknown>;
  for (const name of Object.keys(s)) {
    const o = SREGS[name]!;
    const x = s[name];
    if (name === 'gdt' || name === 'idt') {
      const t = x as { base?: bigint | number; limit?: number };
      if (t.base !== undefined) u64(o + DT.base!, t.base);
      if (t.limit !== undefined) {
        v.setUint16(o + DT.limit!, Number(t.limit), true);
        mark?.(o + DT.limit!, 2);
      }
    } else if (name === 'interruptBitmap') {
      (x as bigint[]).forEach((w, i) => u64(o + 8 * i, w));
    } else if (typeof x === 'object') {
      const seg = x as Record<string, bigint | number>;
      for (const k of Object.keys(seg)) {
        const f = seg[k]!;
        if (k === 'base') u64(o + SEG.base!, f);
        else if (k === 'limit') {
          v.setUint32(o + SEG.limit!, Number(f), true);
          mark?.(o + SEG.limit!, 4);
        } else if (k === 'selector') {
          v.setUint16(o + SEG.selector!, Number(f), true);
          mark?.(o + SEG.selector!, 2);
        } else {
          v.setUint8(o + SEG[k]!, Number(f));
          mark?.(o + SEG[k]!, 1);
        }
      }
    } else {
      u64(o, x as bigint | number); // a control register
    }
  }
}

/** @internal Names the 18 words of a `struct kvm_regs` that start at `words[at]`. */
export function regsFromWords(w: BigUint64Array, at = 0): Regs {
  return {
    rax: w[at]!, rbx: w[at + 1]!, rcx: w[at + 2]!, rdx: w[at + 3]!,
    rsi: w[at + 4]!, rdi: w[at + 5]!, rsp: w[at + 6]!, rbp: w[at + 7]!,
    r8: w[at + 8]!, r9: w[at + 9]!, r10: w[at + 10]!, r11: w[at + 11]!,
    r12: w[at + 12]!, r13: w[at + 13]!, r14: w[at + 14]!, r15: w[at + 15]!,
    rip: w[at + 16]!, rflags: w[at + 17]!,
  };
}

/**
 * @internal Writes the checked registers (from {@link validateRegs}) into
 * the 18 words at `words[at]`, leaving the words of those not given.
 */
export function regsToWords(values: readonly (bigint | undefined)[], w: BigUint64Array, at = 0): void {
  for (let i = 0; i < 18; i++) {
    const v = values[i];
    if (v !== undefined) w[at + i] = v;
  }
}

// The error names of the registers, made once: setRegs() checks all 18 on
// every call.
const REG_ARG_NAMES = REG_NAMES.map((r) => `regs.${r}`);

/**
 * @internal Checks a {@link RegsInput}: its own, known registers as
 * bigints in `struct kvm_regs` order, undefined where not given (what the
 * addon reads).
 */
export function validateRegs(regs: unknown, name = 'regs'): (bigint | undefined)[] {
  const o = validateObject(regs, name, REG_NAMES);
  const names = name === 'regs' ? REG_ARG_NAMES : REG_NAMES.map((r) => `${name}.${r}`);
  const out = new Array<bigint | undefined>(18);
  for (let i = 0; i < 18; i++) {
    const v = own(o, REG_NAMES[i]!);
    out[i] = v === undefined ? undefined : validateU64(v, names[i]!);
  }
  return out;
}

/** @internal Checks a partial segment (`sregs.cs`...) and returns a clean copy. */
export function validateSegment(segment: unknown, name: string): Numeric<Segment> {
  const o = validateObject(segment, name, SEGMENT_KEYS);
  const out: Record<string, number | bigint> = {};
  if (own(o, 'base') !== undefined) out.base = validateU64(o.base, `${name}.base`);
  if (own(o, 'limit') !== undefined) out.limit = validateU32(o.limit, `${name}.limit`);
  if (own(o, 'selector') !== undefined) out.selector = validateU16(o.selector, `${name}.selector`);
  for (const [k, max] of Object.entries(SEGMENT_BITS)) {
    if (own(o, k) !== undefined) out[k] = validateU8(o[k], `${name}.${k}`, max);
  }
  return out as Numeric<Segment>;
}

/** @internal Checks a {@link SregsInput} and returns a clean copy. */
export function validateSregs(sregs: unknown, name = 'sregs'): SregsInput {
  const o = validateObject(sregs, name, SREGS_KEYS);
  const out: Record<string, unknown> = {};
  for (const seg of SEGMENT_NAMES) {
    if (own(o, seg) !== undefined) out[seg] = validateSegment(o[seg], `${name}.${seg}`);
  }
  for (const t of ['gdt', 'idt'] as const) {
    if (own(o, t) === undefined) continue;
    const d = validateObject(o[t], `${name}.${t}`, ['base', 'limit']);
    const table: Record<string, number | bigint> = {};
    if (own(d, 'base') !== undefined) table.base = validateU64(d.base, `${name}.${t}.base`);
    if (own(d, 'limit') !== undefined) table.limit = validateU16(d.limit, `${name}.${t}.limit`);
    out[t] = table;
  }
  for (const c of CONTROL_NAMES) {
    if (own(o, c) !== undefined) out[c] = validateU64(o[c], `${name}.${c}`);
  }
  if (own(o, 'interruptBitmap') !== undefined) {
    const bits = validateArray(o.interruptBitmap, `${name}.interruptBitmap`, 4);
    if (bits.length !== 4) throw outOfRange(`${name}.interruptBitmap.length`, '4 (256 bits)', bits.length);
    out.interruptBitmap = bits.map((b, i) => validateU64(b, `${name}.interruptBitmap[${i}]`));
  }
  return out as SregsInput;
}
