// The second-level (EPT/NPT) table's geometry: which 512-entry table pages
// KVM's TDP MMU needs to map a set of guest-physical pages, drawn as the
// kernel's kvm_mmu_page nodes.

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
  const a = BigInt(gpa);
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
  return { level, gfn, gfnCount: FRAMES_PER_LEVEL ** BigInt(level), spt: new Array(512).fill(null), parentPtes: [] };
}

/** The child table under `page` at `index`, created when missing. */
export function childAt(page: MmuPage, index: number): MmuPage {
  const e = page.spt[index];
  if (e?.kind === 'table') return e.child;
  const child = newMmuPage(page.level - 1, page.gfn + BigInt(index) * (page.gfnCount / FRAMES_PER_LEVEL));
  child.parentPtes.push({ parent: page, index });
  page.spt[index] = { kind: 'table', child };
  return child;
}

/** The index of `gfn` in a table at `level`. */
export function indexIn(level: number, gfn: bigint): number {
  return Number((gfn >> (9n * BigInt(level - 1))) & 0x1ffn);
}

/**
 * The tree of table pages that mapping `gfns` needs, each leaf at
 * `leafLevel` (1 for 4 KiB pages, 2 for 2 MiB). A prediction from
 * geometry alone: compare it with {@link KvmStats} and traced tables.
 */
export function predictTree(gfns: Iterable<bigint>, leafLevel = 1): MmuPage {
  const root = newMmuPage(4, 0n);
  for (const gfn of gfns) {
    let page = root;
    while (page.level > leafLevel) page = childAt(page, indexIn(page.level, gfn));
    const span = FRAMES_PER_LEVEL ** BigInt(leafLevel - 1);
    page.spt[indexIn(page.level, gfn)] = { kind: 'leaf', gfn: gfn - (gfn % span), level: leafLevel };
  }
  return root;
}

/** Every table page of a tree, root first. */
export function tables(root: MmuPage): MmuPage[] {
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
  return tables(root)
    .flatMap((p) => p.spt.filter((e): e is SptLeaf => e?.kind === 'leaf'))
    .sort((a, b) => (a.gfn < b.gfn ? -1 : a.gfn > b.gfn ? 1 : 0));
}
