// Guest page tables: written straight into guest memory by PageTableBuilder
// and read back by walkPageTables, for 32-bit paging and 4-level long mode.
import { argError } from '../core/errors';
import { invalidArgValue, invalidReturnValue, outOfRange, own, validateAligned, validateArray, validateBoolean, validateFunction, validateObject, validateOneOf, validateOptions, validateString, validateU64 } from '../core/validate';

/** The paging structures node-kvm builds and walks: 32-bit, PAE (3 levels) and 4-level long mode. */
export type PagingMode = 'paging32' | 'pae' | 'long';

/** Page sizes: 4 KiB everywhere; 4 MiB in 32-bit paging (CR4.PSE); 2 MiB in PAE and long mode; 1 GiB in long mode. */
export type PageSize = 0x1000 | 0x200000 | 0x400000 | 0x40000000;

/** One mapping for {@link PageTableBuilder.map}: `size` bytes from `virt` to `phys`. */
export interface PageMapping {
  virt: bigint | number;
  phys: bigint | number;
  size: bigint | number;
  /** Default 4 KiB. Addresses and size must be multiples of it. */
  pageSize?: PageSize;
  /** Default true. */
  writable?: boolean;
  /** Reachable from CPL3; default false. */
  user?: boolean;
}

interface Format {
  levels: number; // the root's level; leaves of 4 KiB pages are at level 1
  entryBytes: 4 | 8;
  bits: number; // index bits per level
  large: Record<number, PageSize>; // level -> page size of a PS leaf there
  addressMask: bigint;
  /** PAE's top-level entries (PDPTEs) take no RW/US bits: they are reserved there. */
  bareRoot?: boolean;
}

const FORMATS: Record<PagingMode, Format> = {
  paging32: { levels: 2, entryBytes: 4, bits: 10, large: { 2: 0x400000 }, addressMask: 0xfffff000n },
  pae: { levels: 3, entryBytes: 8, bits: 9, large: { 2: 0x200000 }, addressMask: 0x000ffffffffff000n, bareRoot: true },
  long: { levels: 4, entryBytes: 8, bits: 9, large: { 2: 0x200000, 3: 0x40000000 }, addressMask: 0x000ffffffffff000n },
};

/** Page-table entry bits shared by both formats. */
export const PTE = { P: 1n, RW: 2n, US: 4n, A: 0x20n, D: 0x40n, PS: 0x80n } as const;

const PAGE = 0x1000n;
const PAGING_MODES: readonly PagingMode[] = ['paging32', 'pae', 'long'];
const PAGE_SIZES: readonly PageSize[] = [0x1000, 0x200000, 0x400000, 0x40000000];

// The caller's memory accessor, checked to give a page-sized byte view.
function checkedAccess(mem: unknown, name: string): PhysAccess {
  const f = validateFunction(mem, name) as PhysAccess;
  return (gpa, length) => {
    const bytes: unknown = f(gpa, length);
    if (!(bytes instanceof Uint8Array) || bytes.length < length) {
      throw invalidReturnValue(`a Uint8Array of at least ${length} bytes`, name, bytes);
    }
    return bytes;
  };
}

/** @internal Checks `Range`s (start <= end, u64 bounds) and returns bigint copies. */
export function validateRanges(value: unknown, name: string): Range[] {
  return validateArray(value, name).map((r, i) => {
    const o = validateObject(r, `${name}[${i}]`, ['start', 'end', 'what']);
    const start = validateU64(own(o, 'start'), `${name}[${i}].start`);
    const end = validateU64(own(o, 'end'), `${name}[${i}].end`);
    if (end < start) throw outOfRange(`${name}[${i}].end`, `>= start (${start})`, end);
    const what = own(o, 'what');
    return what === undefined ? { start, end } : { start, end, what: validateString(what, `${name}[${i}].what`) };
  });
}

function indexAt(f: Format, va: bigint, level: number): number {
  return Number((va >> (12n + BigInt((level - 1) * f.bits))) & ((1n << BigInt(f.bits)) - 1n));
}

function readEntry(f: Format, table: Uint8Array, index: number): bigint {
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  return f.entryBytes === 8 ? view.getBigUint64(index * 8, true) : BigInt(view.getUint32(index * 4, true));
}

function writeEntry(f: Format, table: Uint8Array, index: number, value: bigint): void {
  const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
  if (f.entryBytes === 8) view.setBigUint64(index * 8, value, true);
  else view.setUint32(index * 4, Number(value), true);
}

/** Reads or writes guest-physical memory: `vm.memoryAt` fits. */
export type PhysAccess = (gpa: bigint, length: number) => Uint8Array;

/** A guest-physical range the builder must not put tables in. */
export interface Range {
  start: bigint;
  end: bigint;
  what?: string;
}

/**
 * Builds guest page tables in guest memory, allocating table pages upward
 * from `start`. Intermediate entries are writable and user-accessible; the
 * leaf decides. Refuses to place a table over an `avoid` range.
 */
export class PageTableBuilder {
  /** Guest-physical address of the root table: the value for CR3. */
  readonly root: bigint;
  readonly #f: Format;
  readonly #mem: PhysAccess;
  readonly #avoid: Range[];
  readonly #limit: bigint;
  #next: bigint;

  constructor(mode: PagingMode, mem: PhysAccess, start: bigint | number, options: { limit?: bigint | number; avoid?: Range[] } = {}) {
    this.#f = FORMATS[validateOneOf(mode, 'mode', PAGING_MODES)];
    this.#mem = checkedAccess(mem, 'mem');
    this.#next = validateU64(start, 'start');
    validateAligned(this.#next, 'start', PAGE, 'a multiple of 4096 (a page boundary)');
    const o = validateOptions(options, 'options', ['limit', 'avoid']);
    this.#avoid = own(o, 'avoid') === undefined ? [] : validateRanges(o.avoid, 'options.avoid');
    this.#limit = own(o, 'limit') === undefined ? 1n << 64n : validateU64(o.limit, 'options.limit');
    this.root = this.#allocate();
  }

  /** First guest-physical address past the tables allocated so far. */
  get end(): bigint {
    return this.#next;
  }

  /** Maps `[virt, virt + size)` to `[phys, phys + size)`. */
  map(m: PageMapping): this {
    const f = this.#f;
    const o = validateObject(m, 'mapping', ['virt', 'phys', 'size', 'pageSize', 'writable', 'user']);
    const pageSize = BigInt(own(o, 'pageSize') === undefined ? 0x1000 : validateOneOf(o.pageSize, 'mapping.pageSize', PAGE_SIZES));
    const leafLevel = pageSize === PAGE ? 1 : Number(Object.entries(f.large).find(([, s]) => BigInt(s) === pageSize)?.[0] ?? 0);
    if (leafLevel === 0) throw invalidArgValue('mapping.pageSize', Number(pageSize), `does not exist in this paging mode: page size 0x${pageSize.toString(16)}`);
    const virt = validateU64(own(o, 'virt'), 'mapping.virt');
    const phys = validateU64(own(o, 'phys'), 'mapping.phys');
    const size = validateU64(own(o, 'size'), 'mapping.size');
    const writable = own(o, 'writable') === undefined ? true : validateBoolean(o.writable, 'mapping.writable');
    const user = own(o, 'user') === undefined ? false : validateBoolean(o.user, 'mapping.user');
    if (virt % pageSize || phys % pageSize || size % pageSize) {
      throw argError(`mapping 0x${virt.toString(16)} -> 0x${phys.toString(16)} (+0x${size.toString(16)}) is not aligned to its 0x${pageSize.toString(16)} pages`);
    }
    // Entries hold no more address bits than this: more would be cut silently.
    const physLimit = f.addressMask + PAGE;
    if (phys + size > physLimit) throw outOfRange('mapping.phys', `such that phys + size <= 0x${physLimit.toString(16)}`, phys);
    const canonical = (a: bigint) => a < 1n << BigInt(f.levels * f.bits + 11) || (f.levels === 4 && a >= (1n << 64n) - (1n << 47n));
    const virtTop = f.levels === 4 ? 1n << 64n : 1n << 32n;
    if (virt + size > virtTop) throw outOfRange('mapping.size', `such that virt + size <= 0x${virtTop.toString(16)}`, size);
    if (f.levels === 4 && (!canonical(virt) || (size > 0n && !canonical(virt + size - 1n)) || (virt < 1n << 47n) !== (virt + size - 1n < 1n << 47n))) {
      throw outOfRange('mapping.virt', 'such that [virt, virt + size) is in one canonical half of the 48-bit address space', virt);
    }
    const leafBits = PTE.P | (writable ? PTE.RW : 0n) | (user ? PTE.US : 0n) | (leafLevel > 1 ? PTE.PS : 0n);
    for (let off = 0n; off < size; off += pageSize) {
      const va = virt + off;
      let table = this.root;
      for (let level = f.levels; level > leafLevel; level--) {
        const bytes = this.#mem(table, Number(PAGE));
        const i = indexAt(f, va, level);
        let entry = readEntry(f, bytes, i);
        if (!(entry & PTE.P)) {
          entry = this.#allocate() | (f.bareRoot && level === f.levels ? PTE.P : PTE.P | PTE.RW | PTE.US);
          writeEntry(f, bytes, i, entry);
        } else if (entry & PTE.PS) {
          throw argError(`0x${va.toString(16)} is already mapped by a larger page`);
        }
        table = entry & f.addressMask;
      }
      writeEntry(f, this.#mem(table, Number(PAGE)), indexAt(f, va, leafLevel), (phys + off) | leafBits);
    }
    return this;
  }

  #allocate(): bigint {
    const gpa = this.#next;
    if (gpa + PAGE > this.#limit) throw argError(`page tables need more room than up to 0x${this.#limit.toString(16)}`);
    const hit = this.#avoid.find((r) => gpa < r.end && gpa + PAGE > r.start);
    if (hit) {
      throw argError(
        `a page table at 0x${gpa.toString(16)} would overlap ${hit.what ?? 'a reserved range'} at 0x${hit.start.toString(16)}-0x${hit.end.toString(16)}; place the tables elsewhere (layout.pageTables)`,
      );
    }
    this.#mem(gpa, Number(PAGE)).fill(0);
    this.#next += PAGE;
    return gpa;
  }
}

/** One level of a page walk. */
export interface WalkStep {
  level: number;
  /** Guest-physical address of the table read at this level. */
  table: bigint;
  index: number;
  entry: bigint;
}

/** The outcome of {@link walkPageTables}. */
export interface Walk {
  valid: boolean;
  /** The guest-physical address (when valid). */
  physicalAddress: bigint;
  pageSize: PageSize | 0;
  /** Every level's entry allows writes. */
  writable: boolean;
  /** Every level's entry allows CPL3. */
  user: boolean;
  steps: WalkStep[];
}

/**
 * Walks the guest's own page tables in guest memory, the way the MMU does:
 * from CR3 down to the leaf, honouring large pages.
 */
export function walkPageTables(mode: PagingMode, mem: PhysAccess, cr3: bigint, va: bigint | number): Walk {
  const f = FORMATS[validateOneOf(mode, 'mode', PAGING_MODES)];
  mem = checkedAccess(mem, 'mem');
  cr3 = validateU64(cr3, 'cr3');
  const addr = validateU64(va, 'va', f.levels === 4 ? undefined : 0xffffffffn);
  const steps: WalkStep[] = [];
  let table = cr3 & f.addressMask;
  let writable = true;
  let user = true;
  for (let level = f.levels; level >= 1; level--) {
    const index = indexAt(f, addr, level);
    const entry = readEntry(f, mem(table, Number(PAGE)), index);
    steps.push({ level, table, index, entry });
    if (!(entry & PTE.P)) return { valid: false, physicalAddress: 0n, pageSize: 0, writable: false, user: false, steps };
    if (!(f.bareRoot && level === f.levels)) {
      writable &&= (entry & PTE.RW) !== 0n;
      user &&= (entry & PTE.US) !== 0n;
    }
    const large = f.large[level];
    if (level === 1 || (large !== undefined && entry & PTE.PS)) {
      const size = level === 1 ? PAGE : BigInt(large ?? 0x1000);
      const base = entry & f.addressMask & ~(size - 1n);
      return { valid: true, physicalAddress: base | (addr & (size - 1n)), pageSize: Number(size) as PageSize, writable, user, steps };
    }
    table = entry & f.addressMask;
  }
  throw new Error('unreachable');
}
