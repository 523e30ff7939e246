import { describe, expect, it } from 'vitest';
import { eptIndex, leaves, predictTree, tables } from '../../../lib';

describe('EPT/NPT geometry', () => {
  it('splits a guest-physical address into 9-bit indices and the page offset', () => {
    // 0x0000_7f80_4020_1abc: pml4 255, pdpt 1, pd 1, pt 1, offset 0xabc
    expect(eptIndex(0x7f8040201abcn)).toEqual({ pml4: 255, pdpt: 1, pd: 1, pt: 1, offset: 0xabc });
    expect(eptIndex(0x20000000)).toEqual({ pml4: 0, pdpt: 0, pd: 256, pt: 0, offset: 0 });
  });

  it('predicts the kvm_mmu_page tree for a set of 4 KiB pages', () => {
    // Two pages in one 2 MiB region, one in the next, one 1 GiB higher.
    const gfns = [0x20000n, 0x20001n, 0x20200n, 0x60000n];
    const root = predictTree(gfns);
    const all = tables(root);
    expect(all.map((p) => p.level)).toEqual([4, 3, 2, 1, 1, 2, 1]);
    expect(leaves(root).map((l) => l.gfn)).toEqual(gfns);
    const pt = all[3]!;
    expect(pt).toMatchObject({ level: 1, gfn: 0x20000n, gfnCount: 512n });
    expect(pt.spt.filter(Boolean)).toHaveLength(2);
    expect(pt.parentPtes).toEqual([{ parent: all[2], index: 256 }]);
    expect(root.gfnCount).toBe(512n ** 4n);
  });

  it('uses level-2 leaves for 2 MiB pages', () => {
    const root = predictTree([0x20000n, 0x20005n, 0x20200n], 2);
    expect(tables(root).map((p) => p.level)).toEqual([4, 3, 2]);
    expect(leaves(root)).toEqual([
      { kind: 'leaf', gfn: 0x20000n, level: 2 },
      { kind: 'leaf', gfn: 0x20200n, level: 2 },
    ]);
  });
});
