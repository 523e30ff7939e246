// kvm-test: needs=tdp
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runHello, GREETING } from '../../../examples/hello-real-mode';
import { describeKvm, leaves, predictTree, probeKvm, tables } from '../../../lib';
import { DATA, Toucher } from '../../../examples/toucher';

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

describe('KVM binary stats against the geometry', () => {
  it('decodes VM and vCPU statistics by their descriptors', () => {
    using t = new Toucher();
    using vmStats = t.vm.openStats();
    using cpuStats = t.vcpu.openStats();
    expect(vmStats.id).toMatch(/^kvm-\d+$/);
    expect(cpuStats.id).toMatch(/^kvm-\d+\/vcpu-0$/);
    const vmNames = vmStats.descriptors.map((d) => d.name);
    for (const n of ['pages_4k', 'pages_2m', 'pages_1g']) expect(vmNames).toContain(n);
    expect(vmStats.descriptors.find((d) => d.name === 'pages_4k')).toMatchObject({ type: 'instant', unit: 'none' });
    const cpuNames = cpuStats.descriptors.map((d) => d.name);
    for (const n of ['exits', 'io_exits', 'mmio_exits', 'pf_fixed', 'pf_taken', 'halt_exits']) expect(cpuNames).toContain(n);
    expect(cpuStats.descriptors.find((d) => d.name === 'exits')).toMatchObject({ type: 'cumulative' });
  });

  it('counts one new 4 KiB leaf, one fixed fault, per fresh page the guest touches', () => {
    using t = new Toucher({ hugePages: false, dataSize: 0x800000 });
    using vmStats = t.vm.openStats();
    using cpuStats = t.vcpu.openStats();
    // 20 pages over three 2 MiB regions of the data slot.
    const offsets = Array.from({ length: 20 }, (_, i) => i * 7 * 4096 + (i % 3) * 0x200000);
    let before = { pages4k: 0n, fixed: 0n };
    t.touch(offsets, () => {
      before = { pages4k: vmStats.get('pages_4k'), fixed: cpuStats.get('pf_fixed') };
    });
    const gfns = offsets.map((o) => BigInt((DATA + o) / 4096));
    const predicted = predictTree(gfns);
    expect(leaves(predicted)).toHaveLength(20);
    expect(tables(predicted).filter((p) => p.level === 1)).toHaveLength(3); // one PT per 2 MiB region
    expect(vmStats.get('pages_4k') - before.pages4k).toBe(BigInt(leaves(predicted).length));
    expect(cpuStats.get('pf_fixed') - before.fixed).toBe(20n);
    expect(vmStats.get('pages_2m')).toBe(0n);
  });

  it('maps 2 MiB leaves when the host backs guest memory with transparent huge pages', () => {
    using t = new Toucher({ hugePages: true });
    using vmStats = t.vm.openStats();
    let before = 0n;
    // Three pages in the slot's first 2 MiB, one in its second.
    const offsets = [0, 0x1000, 0x5000, 0x200000 + 0x3000];
    t.touch(offsets, () => {
      before = vmStats.get('pages_2m');
    });
    const predicted = predictTree(offsets.map((o) => BigInt((DATA + o) / 4096)), 2);
    expect(vmStats.get('pages_2m') - before).toBe(BigInt(leaves(predicted).length));
    expect(leaves(predicted)).toHaveLength(2);
  });
});
