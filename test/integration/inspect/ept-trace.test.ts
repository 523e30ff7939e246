// kvm-test: needs=tdp,tdp_mmu,mmu_trace
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { drawEptTree, OFFSETS } from '../../../examples/ept-tree';
import { DATA, Toucher } from '../../../examples/toucher';
import { GuestMemory, leaves, MmuTrace, predictTree, probeKvm, rebuildMmuTree, resolveGpa, tables, type MmuPage } from '../../../lib';

const GFN = (o: number) => BigInt((DATA + o) / 4096);
const inData = (gfn: bigint, size: number) => gfn >= GFN(0) && gfn < GFN(size);

/** Runs the toucher under a trace from its very first instruction; returns the rebuilt tree and the counters. */
function traced(huge: boolean | 'hugetlb', offsets: number[]) {
  const format = probeKvm().vendorModule === 'kvm_intel' ? 'ept' : 'npt';
  const trace = MmuTrace.start();
  using t = new Toucher({ hugePages: huge, dataSize: 0x600000 });
  t.touch(offsets);
  const { tree, mmu } = rebuildMmuTree(trace.stop(), format);
  if (mmu !== 'tdp') throw new Error(`expected the TDP MMU, traced ${mmu}`);
  using stats = t.vm.openStats();
  const counters = { pages4k: stats.get('pages_4k'), pages2m: stats.get('pages_2m') };
  // Host frames from pagemap, for every leaf, while the memory still exists.
  const pagemap = new Map(leaves(tree).map((l) => [l.gfn, resolveGpa(t.vm, l.gfn * 4096n).host?.pfn]));
  return { tree, counters, pagemap };
}

/** The tables of a tree as comparable [level, first gfn] pairs. */
const shape = (root: MmuPage) => tables(root).map((p) => [p.level, p.gfn]);

describe('the real TDP tree, rebuilt from kvmmmu tracepoints', () => {
  it('holds exactly the touched pages, on the host frames pagemap names (4 KiB backing)', () => {
    const { tree, counters, pagemap } = traced(false, OFFSETS);
    const data = leaves(tree).filter((l) => inData(l.gfn, 0x600000));
    expect(data.map((l) => l.gfn)).toEqual(OFFSETS.map(GFN));
    expect(data.every((l) => l.level === 1 && l.writable && l.executable)).toBe(true);
    for (const l of leaves(tree)) expect([l.gfn, l.pfn]).toEqual([l.gfn, pagemap.get(l.gfn)]);
    // Every link holds its child table's frame.
    for (const p of tables(tree)) {
      for (const e of p.spt) if (e?.kind === 'table') expect((e.spte! >> 12n) & ((1n << 40n) - 1n)).toBe(e.child.pfn);
    }
    // The three views agree: geometry predicts these tables, the counters count these leaves.
    expect(shape(tree)).toEqual(shape(predictTree(leaves(tree).map((l) => l.gfn))));
    expect(counters.pages4k).toBe(BigInt(leaves(tree).filter((l) => l.level === 1).length));
    expect(counters.pages2m).toBe(0n);
  });

  it('shows 2 MiB leaves when transparent huge pages back the guest', () => {
    const { tree, counters, pagemap } = traced(true, OFFSETS);
    const data = leaves(tree).filter((l) => inData(l.gfn, 0x600000));
    // OFFSETS fall in three 2 MiB regions of the (2 MiB-aligned) data slot.
    expect(data.map((l) => [l.gfn, l.level])).toEqual([
      [GFN(0), 2],
      [GFN(0x200000), 2],
      [GFN(0x400000), 2],
    ]);
    for (const l of data) {
      expect(l.pfn! % 512n).toBe(0n);
      expect(l.pfn).toBe(pagemap.get(l.gfn));
    }
    expect(counters.pages2m).toBe(BigInt(data.length));
    expect(counters.pages4k).toBe(BigInt(leaves(tree).filter((l) => l.level === 1).length));
  });

  it('shows 2 MiB leaves for hugetlbfs memory, once pages are reserved', () => {
    const pool = '/proc/sys/vm/nr_hugepages';
    const before = readFileSync(pool, 'utf8').trim();
    try {
      writeFileSync(pool, '0');
      let err: unknown;
      try {
        GuestMemory.allocate(0x200000, { hugePages: 'hugetlb' });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'ENOMEM', syscall: 'mmap' });
      expect((err as Error).message).toMatch(/nr_hugepages/);

      writeFileSync(pool, '4');
      expect(readFileSync(pool, 'utf8').trim()).toBe('4');
      const { tree, counters, pagemap } = traced('hugetlb', OFFSETS);
      const data = leaves(tree).filter((l) => inData(l.gfn, 0x600000));
      expect(data.map((l) => [l.gfn, l.level])).toEqual([
        [GFN(0), 2],
        [GFN(0x200000), 2],
        [GFN(0x400000), 2],
      ]);
      for (const l of data) expect(l.pfn).toBe(pagemap.get(l.gfn));
      expect(counters.pages2m).toBe(3n);
    } finally {
      writeFileSync(pool, before);
    }
  });

  it('drives the example, which draws the traced tree as text and SVG', () => {
    const pic = drawEptTree(false);
    expect(pic.source).toMatch(/^source: kvmmmu:kvm_tdp_mmu_spte_changed, traced/);
    expect(pic.text).toMatch(/^EPT\/NPT tree, 4 KiB host backing; source: kvmmmu/);
    expect(pic.text).toContain('kvm_mmu_page level 4 (root)');
    for (const o of OFFSETS) expect(pic.text).toMatch(new RegExp(`4K leaf  gpa 0x${(DATA + o).toString(16)} -> hpa 0x[0-9a-f]+000  rwx`));
    expect(pic.svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect((pic.svg.match(/<rect /g) ?? []).length).toBe(tables(pic.tree).length + 1);
  });
});
