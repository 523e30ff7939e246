// kvm-test: smoke
import { describe, expect, it } from 'vitest';
import { Cap, Kvm, KvmError, probeKvm } from '../../../lib';
import { catchError } from '../helpers';

describe('/dev/kvm', () => {
  it('reports API version 12 and the capabilities node-kvm relies on', () => {
    using kvm = Kvm.open();
    expect(kvm.apiVersion()).toBe(12);
    expect(kvm.checkExtension(Cap.USER_MEMORY)).toBeGreaterThan(0);
    expect(kvm.checkExtension(Cap.NR_MEMSLOTS)).toBeGreaterThanOrEqual(32);
    expect(kvm.checkExtension(Cap.MAX_VCPUS)).toBeGreaterThanOrEqual(1);
    expect(kvm.checkExtension(Cap.IMMEDIATE_EXIT)).toBe(1);
    // An unknown capability is simply unsupported, not an error.
    expect(kvm.checkExtension(0x7ffffff)).toBe(0);
  });

  it('gives a kvm_run mmap size of whole pages, at least one', () => {
    using kvm = Kvm.open();
    const size = kvm.vcpuMmapSize();
    expect(size).toBeGreaterThanOrEqual(4096);
    expect(size % 4096).toBe(0);
  });

  it('rejects an unknown VM type with EINVAL from KVM_CREATE_VM', () => {
    using kvm = Kvm.open();
    const err = catchError(() => kvm.createVm({ type: 0x7f }));
    expect(err).toBeInstanceOf(KvmError);
    expect(err).toMatchObject({ code: 'EINVAL', errno: 22, syscall: 'KVM_CREATE_VM' });
  });

  it('fails to open a missing device with ENOENT and says what to do', () => {
    const err = catchError(() => Kvm.open('/dev/kvm-does-not-exist'));
    expect(err).toMatchObject({ code: 'ENOENT', syscall: 'open' });
    expect((err as Error).message).toMatch(/modprobe|sandbox/);
  });

  it('probes the machine as usable and names the backend', () => {
    const p = probeKvm();
    expect(p.usable).toBe(true);
    expect(['kvm_intel', 'kvm_amd', 'kvm_pvm']).toContain(p.vendorModule);
  });
});
