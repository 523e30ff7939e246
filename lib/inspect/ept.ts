// The second-level (EPT/NPT) table's geometry: which 512-entry table pages
// KVM's TDP MMU needs to map a set of guest-physical pages, drawn as the
// kernel's kvm_mmu_page nodes.

import { invalidArgType, invalidArgValue, own, validateArray, validateInteger, validateObject, validateU64 } from '../core/validate';

/** Bits of a guest-physical address at each level of a 4-level EPT/NPT. */
export interface EptIndex {
  /** Bits 47:39: the entry in the root (level 4, PML4). */
  pml4: number;
  /** Bits 38:30: level 3 (PDPT); a 1 GiB leaf ends here. */
  pdpt: number;
  /** Bits 29:21: level 2 (PD); a 2 MiB leaf ends here. */
  pd: number;
  /** Bits 20:12: level 1 (PT), 4 KiB leaves. */
  pt: number;
  /** Bits 11:0. */
  offset: number;
}

/** Splits a guest-physical address into its EPT/NPT indices. */
export function eptIndex(gpa: bigint | number): EptIndex {
  const a = validateU64(gpa, 'gpa');
  const at = (shift: bigint) => Number((a >> shift) & 0x1ffn);
  return { pml4: at(39n), pdpt: at(30n), pd: at(21n), pt: at(12n), offset: Number(a & 0xfffn) };
}

/** A leaf entry: one guest page mapped to a host frame. */
export interface SptLeaf {
  kind: 'leaf';
  /** First guest frame the leaf maps. */
  gfn: bigint;
  /** 1: 4 KiB, 2: 2 MiB, 3: 1 GiB. */
  level: number;
  /** Host frame, where known (pagemap or a trace). */
  pfn?: bigint | null;
  /** Permission bits, where known (from a real SPTE). */
  writable?: boolean;
  executable?: boolean;
  /** The raw SPTE, where it came from the kernel. */
  spte?: bigint;
}

/** A table entry pointing at a child table. */
export interface SptLink {
  kind: 'table';
  child: MmuPage;
  spte?: bigint;
  /** The link was placed by geometry, not read from a traced SPTE. */
  inferred?: boolean;
}

/** One 512-entry table page, as the kernel's `struct kvm_mmu_page` describes it. */
export interface MmuPage {
  /** 4 is the root (PML4); leaves of 4 KiB pages live in level-1 tables. */
  level: number;
  /** First guest frame this table covers. */
  gfn: bigint;
  /** Number of guest frames it covers: 512^level. */
  gfnCount: bigint;
  /** The 512 entries; null where nothing is mapped. */
  spt: (SptLeaf | SptLink | null)[];
  /** Entries that point at this table: the parent's table and index (none for the root). */
  parentPtes: { parent: MmuPage; index: number }[];
  /** The host frame holding this table, where known (from a trace). */
  pfn?: bigint;
}

const FRAMES_PER_LEVEL = 512n;

/** A new empty table at `level` covering the frames from `gfn`. */
export function newMmuPage(level: number, gfn: bigint): MmuPage {
  validateInteger(level, 'level', 1, 4);
  if (typeof gfn !== 'bigint') throw invalidArgType('gfn', 'of type bigint', gfn);
  validateU64(gfn, 'gfn', GFN_MAX);
  return { level, gfn, gfnCount: FRAMES_PER_LEVEL ** BigInt(level), spt: new Array(512).fill(null), parentPtes: [] };
}

/** The child table under `page` at `index`, created when missing. */
export function childAt(page: MmuPage, index: number): MmuPage {
  validatePage(page, 'page', 5);
  if (page.level < 2) throw invalidArgValue('page.level', page.level, 'must be 2 or more: level-1 tables hold only leaves');
  validateInteger(index, 'index', 0, 511);
  const e = page.spt[index];
  if (e?.kind === 'table') return e.child;
  const child = newMmuPage(page.level - 1, page.gfn + BigInt(index) * (page.gfnCount / FRAMES_PER_LEVEL));
  child.parentPtes.push({ parent: page, index });
  page.spt[index] = { kind: 'table', child };
  return child;
}

/** The index of `gfn` in a table at `level`. */
export function indexIn(level: number, gfn: bigint): number {
  validateInteger(level, 'level', 1, 4);
  gfn = validateU64(gfn, 'gfn', GFN_MAX);
  return Number((gfn >> (9n * BigInt(level - 1))) & 0x1ffn);
}

/**
 * The tree of table pages that mapping `gfns` needs, each leaf at
 * `leafLevel` (1 for 4 KiB pages, 2 for 2 MiB). A prediction from
 * geometry alone: compare it with {@link KvmStats} and traced tables.
 */
export function predictTree(gfns: Iterable<bigint>, leafLevel = 1): MmuPage {
  if (typeof gfns !== 'object' || gfns === null || typeof (gfns as Partial<Iterable<bigint>>)[Symbol.iterator] !== 'function') {
    throw invalidArgType('gfns', 'an iterable object', gfns);
  }
  validateInteger(leafLevel, 'leafLevel', 1, 3);
  const root = newMmuPage(4, 0n);
  let i = 0;
  for (const g of gfns) {
    const gfn = validateU64(g, `gfns[${i++}]`, GFN_MAX);
    let page = root;
    while (page.level > leafLevel) page = childAt(page, indexIn(page.level, gfn));
    const span = FRAMES_PER_LEVEL ** BigInt(leafLevel - 1);
    page.spt[indexIn(page.level, gfn)] = { kind: 'leaf', gfn: gfn - (gfn % span), level: leafLevel };
  }
  return root;
}

/** Every table page of a tree, root first. */
export function tables(root: MmuPage): MmuPage[] {
  validateMmuTree(root, 'root');
  const out: MmuPage[] = [];
  const visit = (p: MmuPage) => {
    out.push(p);
    for (const e of p.spt) if (e?.kind === 'table') visit(e.child);
  };
  visit(root);
  return out;
}

/** Every leaf of a tree, in guest-frame order. */
export function leaves(root: MmuPage): SptLeaf[] {
  validateMmuTree(root, 'root');
  return tables(root)
    .flatMap((p) => p.spt.filter((e): e is SptLeaf => e?.kind === 'leaf'))
    .sort((a, b) => (a.gfn < b.gfn ? -1 : a.gfn > b.gfn ? 1 : 0));
}

// 4 levels of 9 bits over 4 KiB pages: 48-bit guest-physical addresses.
const GFN_MAX = (1n << 36n) - 1n;

/**
 * @internal Checks the shape of a table tree (as {@link predictTree} and
 * `rebuildMmuTree` make them): levels 1-4 that drop at every link, so no
 * cycles; 512-entry `spt` arrays; leaves with bigint frames.
 */
export function validateMmuTree(page: unknown, name: string, parentLevel = 5): asserts page is MmuPage {
  const { level, spt } = validatePage(page, name, parentLevel);
  for (let i = 0; i < 512; i++) {
    const e = spt[i];
    if (e === null) continue;
    const where = `${name}.spt[${i}]`;
    const entry = validateObject(e, where);
    if (own(entry, 'kind') === 'table') {
      validateMmuTree(own(entry, 'child'), `${where}.child`, level);
    } else if (own(entry, 'kind') === 'leaf') {
      if (typeof own(entry, 'gfn') !== 'bigint') throw invalidArgType(`${where}.gfn`, 'of type bigint', entry.gfn);
      validateInteger(own(entry, 'level'), `${where}.level`, 1, 3);
      const leafPfn = own(entry, 'pfn');
      if (leafPfn !== undefined && leafPfn !== null && typeof leafPfn !== 'bigint') {
        throw invalidArgType(`${where}.pfn`, 'of type bigint or null', leafPfn);
      }
    } else {
      throw invalidArgValue(`${where}.kind`, entry.kind, "must be 'leaf' or 'table'");
    }
  }
}

// One table page's own fields (not its children).
function validatePage(page: unknown, name: string, parentLevel: number): MmuPage {
  const p = validateObject(page, name);
  const level = validateInteger(own(p, 'level'), `${name}.level`, 1, 4);
  if (level >= parentLevel) throw invalidArgValue(`${name}.level`, level, `must be below its parent's level ${parentLevel}`);
  for (const k of ['gfn', 'gfnCount'] as const) {
    if (typeof own(p, k) !== 'bigint') throw invalidArgType(`${name}.${k}`, 'of type bigint', p[k]);
  }
  const pfn = own(p, 'pfn');
  if (pfn !== undefined && typeof pfn !== 'bigint') throw invalidArgType(`${name}.pfn`, 'of type bigint', pfn);
  validateArray(own(p, 'parentPtes'), `${name}.parentPtes`);
  const spt = validateArray(own(p, 'spt'), `${name}.spt`, 512);
  if (spt.length !== 512) throw invalidArgValue(`${name}.spt`, spt, 'must have 512 entries');
  return p as unknown as MmuPage;
}
