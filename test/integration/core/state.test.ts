// kvm-test: smoke
// The vCPU's whole state, through every get/set pair, against real KVM.
import { describe, expect, it } from 'vitest';
import { Cap } from '../../../lib';
import { catchError, realModeGuest, runToExit } from '../helpers';

const XSTATE_BV = 512; // offset of the XSAVE header's XSTATE_BV
const XMM0 = 160; // offset of XMM0 in the legacy (fxsave) region

describe('vCPU state round trips', () => {
  it('reads back the CPUID it was given', () => {
    using g = realModeGuest([0xf4]);
    const supported = g.kvm.getSupportedCpuid();
    const got = g.vcpu.getCpuid();
    expect(got.length).toBe(supported.length);
    const leaf0 = got.find((e) => e.function === 0 && e.index === 0);
    expect(leaf0).toEqual(supported.find((e) => e.function === 0 && e.index === 0));
  });

  it('sets and gets MSRs, and reports a partial count where the kernel stops', () => {
    using g = realModeGuest([0xf4]);
    const SYSENTER_CS = 0x174;
    expect(g.vcpu.setMsrs([{ index: SYSENTER_CS, value: 0x10n }])).toBe(1);
    expect(g.vcpu.getMsrs([SYSENTER_CS])).toEqual([{ index: SYSENTER_CS, value: 0x10n }]);
    // An MSR KVM does not know ends the list: what came before it still counts.
    const got = g.vcpu.getMsrs([SYSENTER_CS, 0x12345678, SYSENTER_CS]);
    expect(got).toEqual([{ index: SYSENTER_CS, value: 0x10n }]);
    expect(g.vcpu.setMsrs([{ index: SYSENTER_CS, value: 0x18n }, { index: 0x12345678, value: 1n }])).toBe(1);
    expect(g.vcpu.getMsrs([SYSENTER_CS])[0]?.value).toBe(0x18n);
    // The MSRs a vCPU's state includes, and the feature MSRs of /dev/kvm.
    expect(g.kvm.getMsrIndexList()).toContain(SYSENTER_CS);
    const features = g.kvm.getMsrFeatureIndexList();
    expect(g.kvm.getFeatureMsrs(features).map((e) => e.index)).toEqual(features);
  });

  it('round-trips the FPU registers', () => {
    using g = realModeGuest([0xf4]);
    const xmm = new Uint8Array(256).map((_, i) => i);
    const fpr = new Uint8Array(128).fill(0x5a);
    g.vcpu.setFpu({ fcw: 0x27f, fsw: 0x100, xmm, fpr });
    const f = g.vcpu.getFpu();
    expect([f.fcw, f.fsw]).toEqual([0x27f, 0x100]);
    expect(f.xmm).toEqual(xmm);
    expect(f.fpr).toEqual(fpr);
  });

  it('round-trips the XSAVE area, which holds the same XMM registers as the FPU view', () => {
    using g = realModeGuest([0xf4]);
    const area = g.vcpu.getXsave();
    expect(area.length).toBeGreaterThanOrEqual(4096);
    area[XSTATE_BV]! |= 0b10; // the SSE state is valid (not in its init state)
    area.fill(0x33, XMM0, XMM0 + 16);
    g.vcpu.setXsave(area);
    expect(g.vcpu.getXsave().subarray(XMM0, XMM0 + 16)).toEqual(new Uint8Array(16).fill(0x33));
    expect(g.vcpu.getFpu().xmm.subarray(0, 16)).toEqual(new Uint8Array(16).fill(0x33));
    expect(catchError(() => g.vcpu.setXsave(new Uint8Array(100)))).toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });

  it('round-trips XCR0, and KVM refuses one without x87 as the architecture does', () => {
    using g = realModeGuest([0xf4]);
    g.vcpu.setXcrs({ flags: 0, xcrs: [{ xcr: 0, value: 3n }] });
    expect(g.vcpu.getXcrs().xcrs.find((x) => x.xcr === 0)?.value).toBe(3n);
    expect(catchError(() => g.vcpu.setXcrs({ flags: 0, xcrs: [{ xcr: 0, value: 2n }] }))).toMatchObject({ code: 'EINVAL', syscall: 'KVM_SET_XCRS' });
  });

  it('round-trips the debug registers', () => {
    using g = realModeGuest([0xf4]);
    g.vcpu.setDebugRegs({ db: [0x1000n, 0x2000n, 0n, 0n], dr7: 0x405n });
    const d = g.vcpu.getDebugRegs();
    expect(d.db).toEqual([0x1000n, 0x2000n, 0n, 0n]);
    expect(d.dr7).toBe(0x405n);
  });

  it('keeps the registers of each vCPU apart when calls on two vCPUs interleave', () => {
    using g = realModeGuest([0xf4]);
    const a = g.vcpu;
    const b = g.vm.createVcpu();
    a.setSregs({ cs: { base: 0x1000n, selector: 0x100 } });
    b.setSregs({ cs: { base: 0x2000n, selector: 0x200 } });
    a.setRegs({ rax: 1, rbx: 11 });
    b.setRegs({ rax: 2, rbx: 22 });
    // Partial writes read the vCPU's own registers first.
    a.setRegs({ rbx: 111 });
    b.setSregs({ ds: { base: 0x3000n, selector: 0x300 } });
    expect([a.getRegs().rax, a.getRegs().rbx, b.getRegs().rax, b.getRegs().rbx]).toEqual([1n, 111n, 2n, 22n]);
    expect([a.getSregs().cs.base, a.getSregs().cs.selector, a.getSregs().ds.selector]).toEqual([0x1000n, 0x100, 0]);
    expect([b.getSregs().cs.base, b.getSregs().ds.base, b.getSregs().ds.selector]).toEqual([0x2000n, 0x3000n, 0x300]);
  });

  it('reports the MP state; without the in-kernel irqchip only runnable is allowed', () => {
    using g = realModeGuest([0xf4]);
    expect(g.vcpu.getMpState()).toBe('runnable');
    g.vcpu.setMpState('runnable');
    expect(catchError(() => g.vcpu.setMpState('halted'))).toMatchObject({ code: 'EINVAL', syscall: 'KVM_SET_MP_STATE' });
  });

  it('shows a queued NMI and interrupt in the vCPU events, and the guest takes the interrupt', () => {
    // IVT entry 0x20 -> 0000:0x1100, where the handler prints 0x42 and halts.
    using g = realModeGuest([0xf4], { memorySize: 0x2000 });
    new DataView(g.memory.buffer).setUint32(0x20 * 4, 0x1100, true);
    g.memory.bytes.set([0xb0, 0x42, 0xe6, 0xe9, 0xf4], 0x1100); // mov al, 0x42; out 0xe9, al; hlt
    g.vcpu.setRegs({ rflags: 0x202, rsp: 0x1f00 }); // IF set
    g.vcpu.interrupt(0x20);
    g.vcpu.nmi();
    const ev = g.vcpu.getVcpuEvents();
    expect(ev.interrupt).toMatchObject({ injected: 1, nr: 0x20 });
    expect(ev.nmi.pending + ev.nmi.injected).toBe(1);
    // Take the NMI out again; the interrupt stays.
    g.vcpu.setVcpuEvents({ nmi: { pending: 0, injected: 0 } });
    expect(g.vcpu.getVcpuEvents().nmi).toMatchObject({ pending: 0, injected: 0 });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', port: 0xe9, value: 0x42 });
  });

  it('reports the TSC frequency and accepts it back', () => {
    using g = realModeGuest([0xf4]);
    const khz = g.vcpu.getTscKhz();
    expect(khz).toBeGreaterThan(0);
    g.vcpu.setTscKhz(khz);
    expect(g.vcpu.getTscKhz()).toBe(khz);
  });

  it('round-trips the nested state where the KVM has one, and says null where not', () => {
    using g = realModeGuest([0xf4]);
    const nested = g.vcpu.getNestedState();
    if (g.vm.checkExtension(Cap.NESTED_STATE) === 0) {
      expect(nested).toBeNull();
      return;
    }
    expect(nested).toBeInstanceOf(Uint8Array);
    g.vcpu.setNestedState(nested!);
    expect(g.vcpu.getNestedState()).toEqual(nested);
  });

  it('queues an SMI where the KVM has SMM, and says ENOTTY where not', () => {
    using g = realModeGuest([0xf4]);
    if (g.vm.checkExtension(Cap.X86_SMM) === 0) {
      expect(catchError(() => g.vcpu.smi())).toMatchObject({ code: 'ENOTTY', syscall: 'KVM_SMI' });
      return;
    }
    g.vcpu.smi();
    expect(g.vcpu.getVcpuEvents().smi.pending).toBe(1);
  });

  it('turns KVM_ENABLE_CAP errors on the vCPU into KvmError', () => {
    using g = realModeGuest([0xf4]);
    expect(catchError(() => g.vcpu.enableCap(0))).toMatchObject({ code: 'EINVAL', syscall: 'KVM_ENABLE_CAP' });
  });
});

describe('sync_regs', () => {
  it('hands registers over through kvm_run at each exit, both ways', () => {
    // inc ax; out 0x80, al; inc ax; out 0x80, al; hlt
    using g = realModeGuest([0x40, 0xe6, 0x80, 0x40, 0xe6, 0x80, 0xf4]);
    if (g.vm.checkExtension(Cap.SYNC_REGS) === 0) expect.fail('KVM_CAP_SYNC_REGS is 0 on this KVM');
    g.vcpu.setRegs({ rax: 0x10 });
    g.vcpu.syncRegs({ regs: true, sregs: true, events: true });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', value: 0x11 });
    // What KVM wrote at the exit equals what the ioctls say.
    expect(g.vcpu.syncedRegs().rax).toBe(0x11n);
    expect(g.vcpu.syncedRegs()).toEqual(g.vcpu.getRegs());
    expect(g.vcpu.syncedSregs().cs).toEqual(g.vcpu.getSregs().cs);
    expect(g.vcpu.syncedVcpuEvents()).toEqual(g.vcpu.getVcpuEvents());
    // A write through kvm_run reaches the guest at the next run.
    g.vcpu.setSyncedRegs({ rax: 0x40 });
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', value: 0x41 });
    expect(g.vcpu.syncedRegs().rax).toBe(0x41n);
  });
});
