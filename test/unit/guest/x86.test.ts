import { describe, expect, it } from 'vitest';
import { FLAT, PageTableBuilder, decodeDescriptor, encodeDescriptor, flatGdt, segmentFor, walkPageTables } from '../../../lib';

// A fake guest-physical memory: the builder and the walk only need bytes.
function fakeMemory(size: number) {
  const bytes = new Uint8Array(size);
  return (gpa: bigint, n: number) => bytes.subarray(Number(gpa), Number(gpa) + n);
}

describe('segment descriptors', () => {
  it('encode the flat descriptors every OS tutorial shows', () => {
    expect(encodeDescriptor(FLAT.code32)).toBe(0x00cf9b000000ffffn);
    expect(encodeDescriptor(FLAT.code64)).toBe(0x00af9b000000ffffn);
    expect(encodeDescriptor(FLAT.data)).toBe(0x00cf93000000ffffn);
  });

  it('decode what they encode, with base and limit split across the entry', () => {
    const d = { base: 0x12345678n, limit: 0xabcde, type: 0x2, s: 1, dpl: 3, present: 1, avl: 1, l: 0, db: 1, g: 0 };
    expect(decodeDescriptor(encodeDescriptor(d))).toEqual(d);
  });

  it('make the hidden segment state with a byte-granular limit', () => {
    expect(segmentFor(0x08, FLAT.code32)).toMatchObject({ selector: 0x08, limit: 0xffffffff, g: 1, db: 1, unusable: 0 });
  });

  it('lay out the flat GDT: null, code32, code64, data', () => {
    const v = new DataView(flatGdt().buffer);
    expect([0, 8, 16, 24].map((o) => v.getBigUint64(o, true))).toEqual([0n, 0x00cf9b000000ffffn, 0x00af9b000000ffffn, 0x00cf93000000ffffn]);
  });
});

describe('page tables', () => {
  it('build 4-level long-mode tables with 4 KiB, 2 MiB and 1 GiB pages that the walk reads back', () => {
    const mem = fakeMemory(0x20000);
    const b = new PageTableBuilder('long', mem, 0x1000)
      .map({ virt: 0x1000, phys: 0x5000, size: 0x2000 })
      .map({ virt: 0x200000, phys: 0x400000, size: 0x200000, pageSize: 0x200000, writable: false })
      .map({ virt: 0x40000000, phys: 0x80000000, size: 0x40000000, pageSize: 0x40000000, user: true });
    expect(b.root).toBe(0x1000n);
    const walk = (va: bigint) => walkPageTables('long', mem, b.root, va);
    expect(walk(0x1234n)).toMatchObject({ valid: true, physicalAddress: 0x5234n, pageSize: 0x1000, writable: true, user: false });
    expect(walk(0x2fffn)).toMatchObject({ physicalAddress: 0x6fffn });
    expect(walk(0x3000n).valid).toBe(false);
    expect(walk(0x3fffffn)).toMatchObject({ physicalAddress: 0x5fffffn, pageSize: 0x200000, writable: false });
    expect(walk(0x7fffffffn)).toMatchObject({ physicalAddress: 0xbfffffffn, pageSize: 0x40000000, user: true });
    // The 4 KiB path went through all four levels, indices from bits 47:39 down to 20:12.
    expect(walk(0x1234n).steps.map((s) => [s.level, s.index])).toEqual([[4, 0], [3, 0], [2, 0], [1, 1]]);
    // PML4, a PDPT, a PD and a PT for the 4 KiB pages; the 2 MiB page shares
    // the PD; the 1 GiB page is a PDPT entry.
    expect(b.end).toBe(0x5000n);
  });

  it('build two-level 32-bit tables with 4 KiB and 4 MiB pages', () => {
    const mem = fakeMemory(0x10000);
    const b = new PageTableBuilder('paging32', mem, 0x2000)
      .map({ virt: 0xc0000000, phys: 0x1000, size: 0x1000 })
      .map({ virt: 0x400000, phys: 0x800000, size: 0x400000, pageSize: 0x400000 });
    const walk = (va: bigint) => walkPageTables('paging32', mem, b.root, va);
    expect(walk(0xc0000010n)).toMatchObject({ physicalAddress: 0x1010n, pageSize: 0x1000 });
    expect(walk(0xc0000010n).steps.map((s) => [s.level, s.index])).toEqual([[2, 0x300], [1, 0]]);
    expect(walk(0x7ffffcn)).toMatchObject({ physicalAddress: 0xbffffcn, pageSize: 0x400000 });
    // 4-byte entries: the PDE for 0xc0000000 sits at index 0x300 of the root.
    expect(new DataView(mem(b.root, 4096).slice().buffer).getUint32(0x300 * 4, true) & 0xfffff000).toBe(0x3000);
  });

  it('build PAE tables whose top-level entries carry only the present bit', () => {
    const mem = fakeMemory(0x10000);
    const b = new PageTableBuilder('pae', mem, 0x1000).map({ virt: 0xc0000000, phys: 0x400000, size: 0x200000, pageSize: 0x200000 });
    const pdpte = new DataView(mem(b.root, 32).slice().buffer).getBigUint64(3 * 8, true);
    expect(pdpte).toBe(0x2000n | 1n); // RW and US are reserved in a PDPTE
    expect(walkPageTables('pae', mem, b.root, 0xc0001234n)).toMatchObject({ physicalAddress: 0x401234n, pageSize: 0x200000, writable: true });
  });

  it('refuse misaligned mappings, missing page sizes and tables over reserved ranges', () => {
    const mem = fakeMemory(0x10000);
    expect(() => new PageTableBuilder('long', mem, 0x1000).map({ virt: 0x1000, phys: 0, size: 0x200000, pageSize: 0x200000 })).toThrow(/not aligned/);
    expect(() => new PageTableBuilder('paging32', mem, 0x1000).map({ virt: 0, phys: 0, size: 0x200000, pageSize: 0x200000 })).toThrow(/does not exist/);
    const avoid = [{ start: 0x2000n, end: 0x3000n, what: 'the program' }];
    expect(() => new PageTableBuilder('long', mem, 0x1000, { avoid }).map({ virt: 0, phys: 0, size: 0x1000 })).toThrow(
      /page table at 0x2000 would overlap the program at 0x2000-0x3000/,
    );
  });
});
