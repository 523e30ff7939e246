// kvm-test: needs=tdp,legacy_mmu,mmu_trace
import { describe, expect, it } from 'vitest';
import { DATA, Toucher } from '../../../examples/toucher';
import { leaves, MmuTrace, predictTree, probeKvm, rebuildMmuTree, resolveGpa, tables } from '../../../lib';

const OFFSETS = [0x0, 0x5000, 0x200000, 0x3ff000];
const GFN = (o: number) => BigInt((DATA + o) / 4096);

describe('the legacy MMU over EPT/NPT (kvm.tdp_mmu=0), rebuilt from kvmmmu tracepoints', () => {
  it('maps exactly the touched data pages, on pagemap frames, in the tables geometry predicts', () => {
    const probe = probeKvm();
    expect(probe).toMatchObject({ tdp: true, tdpMmu: false });
    const trace = MmuTrace.start();
    using t = new Toucher({ hugePages: false });
    t.touch(OFFSETS);
    const { tree, mmu } = rebuildMmuTree(trace.stop(), probe.vendorModule === 'kvm_intel' ? 'ept' : 'npt');
    expect(mmu).toBe('legacy');
    // Host pages of the data slot exist only once touched, so the legacy
    // MMU's prefetch of neighbouring pages adds none there.
    const data = leaves(tree).filter((l) => l.gfn >= GFN(0) && l.gfn < GFN(0x400000));
    expect(data.map((l) => l.gfn)).toEqual(OFFSETS.map(GFN));
    for (const l of leaves(tree)) expect(l.pfn).toBe(resolveGpa(t.vm, l.gfn * 4096n).host?.pfn);
    // Each 2 MiB region's leaves sit in one table page, whose frame the SPTE addresses give.
    const pts = tables(tree).filter((p) => p.level === 1 && p.gfn >= GFN(0));
    expect(pts.map((p) => p.gfn)).toEqual([GFN(0), GFN(0x200000)]);
    for (const p of pts) expect(p.pfn).toBeGreaterThan(0n);
    const shape = (root: typeof tree) => tables(root).map((p) => [p.level, p.gfn]);
    expect(shape(tree)).toEqual(shape(predictTree(leaves(tree).map((l) => l.gfn))));
    using stats = t.vm.openStats();
    expect(stats.get('pages_4k')).toBe(BigInt(leaves(tree).length));
  });
});
