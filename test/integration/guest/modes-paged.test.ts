// kvm-test: needs=paging32
import { describe, expect, it } from 'vitest';
import { walkPageTables } from '../../../lib';
import { cGuest } from '../guests';

describe('32-bit paging', () => {
  it('runs the paged guest on identity-mapped 4 KiB pages: greeting, 42 at 0x400, 42 in eax', () => {
    using g = cGuest('paged');
    const s = g.vcpu.getSregs();
    expect(s.cr0 & 0x80000001n).toBe(0x80000001n);
    expect(s.cr4 & 0x20n).toBe(0n); // not PAE
    expect(g.run()).toEqual({ output: 'Hello from paged mode!\n', eax: 42, at0x400: 42 });
  });

  it('agrees with KVM_TRANSLATE for 4 KiB and 4 MiB pages and an alias', () => {
    using g = cGuest('paged', {
      mappings: [
        { virt: 0, phys: 0, size: 0x100000 },
        { virt: 0xc0000000, phys: 0, size: 0x400000, pageSize: 0x400000 },
        { virt: 0x80001000, phys: 0x8000, size: 0x1000, writable: false },
      ],
    });
    const cr3 = g.vcpu.getSregs().cr3;
    const mem = (gpa: bigint, n: number) => g.vm.memoryAt(gpa, n);
    for (const va of [0x8000n, 0xc0008123n, 0xc03ffffcn, 0x80001010n]) {
      const k = g.vcpu.translate(va);
      const w = walkPageTables('paging32', mem, cr3, va);
      expect(k.valid && w.valid).toBe(true);
      expect(w.physicalAddress).toBe(k.physicalAddress);
    }
    expect(walkPageTables('paging32', mem, cr3, 0xc0008123n)).toMatchObject({ physicalAddress: 0x8123n, pageSize: 0x400000 });
    expect(walkPageTables('paging32', mem, cr3, 0x80001010n)).toMatchObject({ physicalAddress: 0x8010n, writable: false });
    expect(g.vcpu.translate(0x100000n).valid).toBe(false);
    expect(g.run().output).toBe('Hello from paged mode!\n');
  });
});

describe('PAE paging', () => {
  it('runs the pae guest: greeting, 42 at 0x400, 42 in eax', () => {
    using g = cGuest('pae');
    const s = g.vcpu.getSregs();
    expect(s.cr4 & 0x20n).toBe(0x20n); // PAE
    expect(s.efer & 0x400n).toBe(0n); // not long mode
    expect(g.run()).toEqual({ output: 'Hello from pae mode!\n', eax: 42, at0x400: 42 });
  });

  it('agrees with KVM_TRANSLATE for 4 KiB and 2 MiB pages above 3 GiB', () => {
    using g = cGuest('pae', {
      mappings: [
        { virt: 0, phys: 0, size: 0x200000, pageSize: 0x200000 },
        { virt: 0xc0000000, phys: 0x200000, size: 0x200000, pageSize: 0x200000 },
        { virt: 0xfff00000, phys: 0x8000, size: 0x1000, writable: false },
      ],
    });
    const cr3 = g.vcpu.getSregs().cr3;
    const mem = (gpa: bigint, n: number) => g.vm.memoryAt(gpa, n);
    for (const va of [0x8000n, 0xc0012345n, 0xfff00abcn]) {
      const k = g.vcpu.translate(va);
      const w = walkPageTables('pae', mem, cr3, va);
      expect(k.valid && w.valid).toBe(true);
      expect(w.physicalAddress).toBe(k.physicalAddress);
    }
    expect(walkPageTables('pae', mem, cr3, 0xc0012345n)).toMatchObject({ physicalAddress: 0x212345n, pageSize: 0x200000 });
    expect(walkPageTables('pae', mem, cr3, 0xfff00abcn)).toMatchObject({ physicalAddress: 0x8abcn, writable: false });
    expect(walkPageTables('pae', mem, cr3, 0xfff00abcn).steps.map((s) => [s.level, s.index])).toEqual([[3, 3], [2, 511], [1, 256]]);
    expect(g.run().output).toBe('Hello from pae mode!\n');
  });
});
