import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain ESM script without types
import { parseTag, plan } from '../../../scripts/test-plan.mjs';

type File = { file: string; smoke: boolean; needs: string[]; tests: number };
const files: File[] = [
  parseTag('a.test.ts', '// kvm-test: smoke\nit(1)\n  it(2)'),
  parseTag('b.test.ts', '// kvm-test: needs=tdp\nit(1)'),
  parseTag('c.test.ts', '// kvm-test: needs=tdp,tdp_mmu\nit(1)'),
  parseTag('d.test.ts', 'import x\nit(1)'),
];
const pvm = { usable: true, tdp: false, tdpMmu: false, reason: undefined };
const amd = { usable: true, tdp: true, tdpMmu: true };
const none = { usable: false, tdp: false, tdpMmu: false, reason: 'open failed with ENOENT' };
const names = (fs: File[] | null) => fs?.map((f) => f.file) ?? null;

describe('test placement', () => {
  it('reads the first-line tag', () => {
    expect(files[0]).toEqual({ file: 'a.test.ts', smoke: true, needs: [], tests: 2 });
    expect(files[2]?.needs).toEqual(['tdp', 'tdp_mmu']);
    expect(files[3]).toMatchObject({ smoke: false, needs: [] });
  });

  it('beside a shadow-paging host, sends what needs TDP plus the smoke set to the sandbox', () => {
    const p = plan('both', pvm, files);
    expect(names(p.host)).toEqual(['a.test.ts', 'd.test.ts']);
    expect(names(p.sandbox)).toEqual(['a.test.ts', 'b.test.ts', 'c.test.ts']);
  });

  it('beside a host with everything, still boots the sandbox for the smoke set', () => {
    const p = plan('both', amd, files);
    expect(names(p.host)).toEqual(['a.test.ts', 'b.test.ts', 'c.test.ts', 'd.test.ts']);
    expect(names(p.sandbox)).toEqual(['a.test.ts']);
  });

  it('runs everything in the sandbox when the host has no usable KVM', () => {
    const p = plan('both', none, files);
    expect(p.host).toBeNull();
    expect(names(p.sandbox)).toEqual(['a.test.ts', 'b.test.ts', 'c.test.ts', 'd.test.ts']);
    expect(p.hostError).toBeUndefined();
  });

  it('sends files that need the legacy MMU to a sandbox booted with kvm.tdp_mmu=0', () => {
    const legacy = parseTag('e.test.ts', '// kvm-test: needs=tdp,legacy_mmu\nit(1)');
    const p = plan('both', none, [...files, legacy]);
    expect(names(p.sandbox)).toEqual(['a.test.ts', 'b.test.ts', 'c.test.ts', 'd.test.ts']);
    expect(p.profiles.map((x: { profile: { moduleParams: unknown }; files: File[] }) => [x.profile.moduleParams, names(x.files)])).toEqual([
      [{ kvm: { tdp_mmu: 0 } }, ['e.test.ts']],
    ]);
  });

  it('honours NODE_KVM_TEST_TARGET', () => {
    expect(plan('host', pvm, files).sandbox).toBeNull();
    expect(plan('host', none, files).hostError).toMatch(/ENOENT/);
    const s = plan('sandbox', amd, files);
    expect(s.host).toBeNull();
    expect(names(s.sandbox)).toHaveLength(4);
  });
});

describe('features', () => {
  it('keeps 32-bit paging off PVM, whose guests it shuts down', async () => {
    // @ts-expect-error: plain ESM script without types
    const { features } = await import('../../../scripts/test-plan.mjs');
    expect(features({ vendorModule: 'kvm_pvm', tdp: false, tdpMmu: false, hwBreakpoints: true, swBreakpoints: false, mmuTrace: true })).toEqual({
      tdp: false,
      tdp_mmu: false,
      paging32: false,
      hw_breakpoints: true,
      sw_breakpoints: false,
      mmu_trace: true,
      legacy_mmu: false,
      boots_linux: false,
    });
    expect(features({ vendorModule: 'kvm_amd', tdp: true, tdpMmu: true, hwBreakpoints: false, swBreakpoints: true, mmuTrace: false })).toEqual({
      tdp: true,
      tdp_mmu: true,
      paging32: true,
      hw_breakpoints: false,
      sw_breakpoints: true,
      mmu_trace: false,
      legacy_mmu: false,
      boots_linux: true,
    });
  });

  it('boots Linux only on hardware-assisted KVM, so beside a PVM host the Linux test goes to the sandbox', async () => {
    // @ts-expect-error: plain ESM script without types
    const { features } = await import('../../../scripts/test-plan.mjs');
    const probe = (vendorModule: string) => ({ vendorModule, tdp: false, tdpMmu: false, hwBreakpoints: false, swBreakpoints: false, mmuTrace: false });
    expect(features(probe('kvm_pvm')).boots_linux).toBe(false);
    expect(features(probe('unknown')).boots_linux).toBe(false);
    expect(features(probe('kvm_intel')).boots_linux).toBe(true);
    const linux = parseTag('test/integration/examples/linux.test.ts', '// kvm-test: needs=boots_linux\nit(1)');
    const p = plan('both', { ...pvm, vendorModule: 'kvm_pvm' }, [linux]);
    expect(names(p.host)).toEqual([]);
    expect(names(p.sandbox)).toEqual(['test/integration/examples/linux.test.ts']);
    expect(names(plan('both', { ...amd, vendorModule: 'kvm_amd' }, [linux]).host)).toEqual(['test/integration/examples/linux.test.ts']);
  });
});
