// kvm-test: smoke
// Whole-VM snapshots restore exactly: the restored guest's later output and
// final registers equal the original's.
import { describe, expect, it } from 'vitest';
import { snapshotDemo } from '../../../examples/snapshot';
import { IrqChip, MemFlag, Vm, setupMode, type Vcpu } from '../../../lib';
import { realModeGuest, runToExit } from '../helpers';

// Long mode: count ecx 0..19 printing each on port 0xE9, then hlt.
//   xor ecx, ecx; next: mov eax, ecx; out 0xe9, al; inc ecx; cmp ecx, 20; jne next; hlt
const LONG_COUNTER = [0x31, 0xc9, 0x89, 0xc8, 0xe6, 0xe9, 0xff, 0xc1, 0x83, 0xf9, 0x14, 0x75, 0xf5, 0xf4];

function outputs(vcpu: Vcpu): number[] {
  const out: number[] = [];
  for (;;) {
    const e = runToExit(vcpu);
    if (e.reason === 'hlt') return out;
    if (e.reason !== 'io') throw new Error(`unexpected ${e.reason}`);
    out.push(e.value);
  }
}

describe('snapshots', () => {
  it('runs the example: a real-mode guest snapshotted mid-count goes on identically in a second VM', () => {
    const r = snapshotDemo();
    expect(r.before).toBe('0123');
    expect(r.original).toBe('456789');
    expect(r.restored).toBe(r.original);
    expect(r.sameRegs).toBe(true);
  });

  it('restores a long-mode guest with paging, through JSON, with identical exits and registers', () => {
    using g = realModeGuest([], { memorySize: 0x200000 });
    g.memory.bytes.set(LONG_COUNTER, 0x100000);
    setupMode(g.vcpu, { mode: 'long', entry: 0x100000 });
    for (let i = 0; i < 7; i++) expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', value: i });
    const snap = g.vm.snapshot();
    const description = JSON.parse(JSON.stringify(snap.description));
    expect(description.vcpus[0].msrs.length).toBeGreaterThan(0);
    const original = outputs(g.vcpu);
    expect(original).toEqual([7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    using copy = Vm.restore(g.kvm, { description, memory: snap.memory });
    expect(copy.vcpus[0]!.getSregs().efer & 0x500n).toBe(0x500n); // still in long mode
    expect(outputs(copy.vcpus[0]!)).toEqual(original);
    expect(copy.vcpus[0]!.getRegs()).toEqual(g.vcpu.getRegs());
    expect(Buffer.compare(copy.memories[0]!.bytes, g.memory.bytes)).toBe(0);
  });

  it('carries the in-kernel irqchip and PIT across, and refuses a snapshot while a vCPU runs', async () => {
    using g = realModeGuest([0xeb, 0xfe], { irqchip: true });
    g.vm.createPit({ speakerDummy: true });
    g.vm.irqLine(3, true);
    const run = g.vcpu.runAsync();
    expect(() => g.vm.snapshot()).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    g.vcpu.kick();
    await run;
    const snap = g.vm.snapshot();
    expect(snap.description.irqchip).toBeDefined();
    using copy = Vm.restore(g.kvm, snap);
    expect(copy.vm.getPic(IrqChip.PIC_MASTER).irr & (1 << 3)).toBe(1 << 3);
    expect(copy.vm.getPit().raw.subarray(0, 72)).toEqual(g.vm.getPit().raw.subarray(0, 72).map((b, i) => (i % 24 >= 16 ? copy.vm.getPit().raw[i]! : b)));
    expect(copy.vcpus[0]!.getLapic()[0x20 + 3]).toBe(0);
  });

  it('restores a PIT made with speakerDummy so that port 0x61 stays in the kernel', () => {
    // in al, 0x61; out 0x80, al; jmp $
    using g = realModeGuest([0xe4, 0x61, 0xe6, 0x80, 0xeb, 0xfe], { irqchip: true });
    g.vm.createPit({ speakerDummy: true });
    const snap = g.vm.snapshot();
    expect(snap.description.pitSpeakerDummy).toBe(true);
    expect(runToExit(g.vcpu)).toMatchObject({ reason: 'io', direction: 'out', port: 0x80 });
    using copy = Vm.restore(g.kvm, snap);
    expect(copy.vm.pitSpeakerDummy).toBe(true);
    expect(runToExit(copy.vcpus[0]!)).toMatchObject({ reason: 'io', direction: 'out', port: 0x80 });
  });

  it('takes incremental snapshots from the dirty log, and a chain restores the latest state', () => {
    // xor cx, cx; next: mov ax, cx; mov [0x3000], cl; out 0xe9, al; inc cx; cmp cx, 20; jne next; hlt
    using g = realModeGuest([0x31, 0xc9, 0x89, 0xc8, 0x88, 0x0e, 0x00, 0x30, 0xe6, 0xe9, 0x41, 0x83, 0xf9, 0x14, 0x75, 0xf2, 0xf4]);
    expect(() => g.vm.snapshot({ incremental: true })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    g.vm.slots[0]!.setFlags(MemFlag.LOG_DIRTY_PAGES);
    for (let i = 0; i < 5; i++) runToExit(g.vcpu);
    const full = g.vm.snapshot();
    for (let i = 5; i < 10; i++) expect(runToExit(g.vcpu)).toMatchObject({ value: i });
    const delta = g.vm.snapshot({ incremental: true });
    // Only what the guest wrote since the full snapshot: the page at 0x3000.
    const pages = delta.description.slots[0]!.pages!;
    expect(pages).toContain(3);
    expect(pages.length).toBeLessThanOrEqual(2);
    expect(delta.memory[0]!.length).toBe(pages.length * 4096);
    const original = outputs(g.vcpu);
    using copy = Vm.restore(g.kvm, [full, { description: JSON.parse(JSON.stringify(delta.description)), memory: delta.memory }]);
    expect(copy.memories[0]!.bytes[0x3000]).toBe(9);
    expect(outputs(copy.vcpus[0]!)).toEqual(original);
    expect(copy.vcpus[0]!.getRegs()).toEqual(g.vcpu.getRegs());
    expect(() => Vm.restore(g.kvm, [delta])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });
});
