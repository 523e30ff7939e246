// kvm-test: smoke
import { describe, expect, it } from 'vitest';
import { hvaToHpa, resolveGpa } from '../../../lib';
import { DATA, Toucher } from '../../../examples/toucher';

describe('GPA -> slot -> HVA -> HPA', () => {
  it('follows a guest page through its slot to the host frame that backs it', () => {
    using t = new Toucher();
    t.touch([0x3000 + 0x10]);
    const chain = resolveGpa(t.vm, DATA + 0x3010);
    expect(chain.slot?.id).toBe(1);
    expect(chain.gfn).toBe(BigInt((DATA + 0x3000) / 4096));
    // userspace_addr + (gfn - base_gfn) * 4096 + offset
    expect(chain.hva).toBe(t.data.address + 0x3010n);
    expect(t.vm.gpaToHva(DATA + 0x3010)).toBe(chain.hva);
    expect(chain.host?.present).toBe(true);
    if (process.getuid?.() === 0) {
      // Root reads frame numbers: the page offset carries over.
      expect(chain.host?.pfn).toBeGreaterThan(0n);
      expect(chain.host!.hpa! & 0xfffn).toBe(0x10n);
    } else {
      expect(chain.host?.pfn).toBeNull();
      expect(chain.host?.reason).toMatch(/CAP_SYS_ADMIN/);
    }
  });

  it('says a page nobody touched is not in RAM yet, and an address outside every slot has no HVA', () => {
    using t = new Toucher();
    const untouched = hvaToHpa(t.data.address + 0x100000n);
    expect(untouched).toMatchObject({ present: false, pfn: null, hpa: null });
    expect(untouched.reason).toMatch(/never touched/);
    const mmio = resolveGpa(t.vm, 0xfee00000);
    expect(mmio.slot).toBeUndefined();
    expect(mmio.hva).toBeUndefined();
    expect(t.vm.gpaToHva(0xfee00000)).toBeUndefined();
  });
});
