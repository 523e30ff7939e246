// kvm-test: needs=tdp
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runHello, GREETING } from '../../examples/hello-real-mode';
import { describeKvm, probeKvm } from '../../lib';

const param = (p: string) => readFileSync(p, 'utf8').trim();

describe('two-dimensional paging (EPT/NPT)', () => {
  it('is reported from the module parameters, with the MMU that builds it', () => {
    const p = probeKvm();
    expect(p.usable).toBe(true);
    expect(p.tdp).toBe(true);
    const tdpParam = p.vendorModule === 'kvm_amd' ? '/sys/module/kvm_amd/parameters/npt' : '/sys/module/kvm_intel/parameters/ept';
    expect(['Y', '1']).toContain(param(tdpParam));
    expect(p.tdpMmu).toBe(param('/sys/module/kvm/parameters/tdp_mmu') === 'Y');
    expect(describeKvm(p)).toMatch(/(npt|ept)=on/);
  });

  it('runs a guest whose memory KVM maps through the second-level table', () => {
    expect(runHello().output).toBe(GREETING);
  });
});
