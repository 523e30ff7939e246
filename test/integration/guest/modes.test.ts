// kvm-test: smoke
import { describe, expect, it } from 'vitest';
import { GuestError, runUntilHalt, setupMode, walkPageTables, type GuestMode } from '../../../lib';
import { cGuest, instructionAddress, symbol } from '../guests';
import { realModeGuest } from '../helpers';

describe('C guests in each mode', () => {
  for (const mode of ['real', 'protected', 'long'] as GuestMode[]) {
    it(`runs the ${mode}-mode guest: greeting on 0xE9, 42 at 0x400, 42 in eax`, () => {
      using g = cGuest(mode);
      expect(g.run()).toEqual({ output: `Hello from ${mode} mode!\n`, eax: 42, at0x400: 42 });
    });
  }

  it('sets long mode up the way the architecture says', () => {
    using g = cGuest('long');
    const s = g.vcpu.getSregs();
    expect(s.efer & 0x500n).toBe(0x500n); // LME and LMA
    expect(s.cr0 & 0x80000001n).toBe(0x80000001n); // PG and PE
    expect(s.cr4 & 0x20n).toBe(0x20n); // PAE
    expect(s.cs).toMatchObject({ selector: 0x10, l: 1, db: 0 });
    expect(s.cr3).toBe(g.setup.cr3);
  });
});

describe('seeing inside a long-mode guest', () => {
  const layout = () => ({
    // 0-2 MiB identity-mapped with 4 KiB pages, 2-4 MiB with one 2 MiB page,
    // and an alias: virtual 0x40000000 -> physical 0x300000 (inside the 2 MiB page's range).
    mappings: [
      { virt: 0, phys: 0, size: 0x200000 },
      { virt: 0x200000, phys: 0x200000, size: 0x200000, pageSize: 0x200000 as const },
      { virt: 0x40000000, phys: 0x300000, size: 0x1000, writable: false },
    ],
  });

  it('translates with KVM_TRANSLATE and the TypeScript page walk alike, for 4 KiB and 2 MiB pages', () => {
    using g = cGuest('long', layout());
    const cr3 = g.vcpu.getSregs().cr3;
    const mem = (gpa: bigint, n: number) => g.vm.memoryAt(gpa, n);
    for (const va of [0x8000n, 0x8123n, 0x200000n, 0x3fffffn, 0x40000abcn]) {
      const k = g.vcpu.translate(va);
      const w = walkPageTables('long', mem, cr3, va);
      expect(k.valid).toBe(true);
      expect(w.valid).toBe(true);
      expect(w.physicalAddress).toBe(k.physicalAddress);
    }
    expect(walkPageTables('long', mem, cr3, 0x8123n)).toMatchObject({ physicalAddress: 0x8123n, pageSize: 0x1000 });
    expect(walkPageTables('long', mem, cr3, 0x3fffffn)).toMatchObject({ physicalAddress: 0x3fffffn, pageSize: 0x200000 });
    const alias = walkPageTables('long', mem, cr3, 0x40000abcn);
    expect(alias).toMatchObject({ physicalAddress: 0x300abcn, pageSize: 0x1000, writable: false });
    expect(alias.steps.map((s) => s.level)).toEqual([4, 3, 2, 1]);
    // Unmapped: both say so.
    expect(g.vcpu.translate(0x80000000n).valid).toBe(false);
    expect(walkPageTables('long', mem, cr3, 0x80000000n).valid).toBe(false);
    // And the guest itself runs on these tables.
    expect(g.run().output).toBe('Hello from long mode!\n');
  });

  it('single-steps, reporting each instruction pointer in debug exits', () => {
    using g = cGuest('long');
    g.vcpu.setGuestDebug({ singleStep: true });
    const pcs: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const e = g.vcpu.run();
      expect(e.reason).toBe('debug');
      if (e.reason === 'debug') pcs.push(e.pc);
    }
    // _start: mov rsp, imm32 (7 bytes), then the call lands on main's first
    // instruction (xor eax, eax: 2 bytes).
    const main = symbol('long', 'main');
    expect(pcs).toEqual([0x8007n, main, main + 2n]);
    g.vcpu.setGuestDebug(null);
    expect(g.run().output).toBe('Hello from long mode!\n');
  });
});

describe('failure reports', () => {
  const failure = (f: () => unknown): GuestError => {
    try {
      f();
    } catch (e) {
      if (e instanceof GuestError) return e;
      throw e;
    }
    throw new Error('expected a GuestError');
  };

  it('name an unexpected exit with the mode, rip, control registers and the disassembled code at rip', () => {
    // Memory starts at 0x1000, so the guest's store to 0x400 hits no slot:
    // an MMIO exit that nothing handles.
    using g = cGuest('long', { layout: { gdt: 0x1000 }, mappings: [{ virt: 0, phys: 0, size: 0x400000 }] }, 0x1000);
    const e = failure(() => runUntilHalt(g.vcpu, { io() {} }));
    expect(e.exit).toMatchObject({ reason: 'mmio', address: 0x400n, isWrite: true, value: 42n });
    expect(e.mode).toBe('long');
    const lines = e.message.split('\n');
    expect(lines[0]).toBe('unhandled mmio exit: mmio');
    expect(lines[1]).toMatch(new RegExp(`^  mode long, rip 0x${e.regs.rip.toString(16)} \\(cs 0x10 base 0x0\\)`));
    expect(lines[2]).toMatch(/^  cr0 0x8000003\d cr2 0x0 cr3 0x2000 cr4 0x20 efer 0x500$/);
    expect(lines[3]).toBe('  code at rip:');
    // KVM completes an emulated MMIO write before exiting, so rip is past
    // the store (movl $42, 0x400: 11 bytes) and the code shown follows it.
    const store = instructionAddress('long', 'movl   $0x2a,0x400');
    expect(e.regs.rip).toBe(store + 11n);
    expect(e.disassembly[0]).toMatch(new RegExp(`^0x${(store + 11n).toString(16)}: `));
    expect(e.disassembly.length).toBeGreaterThan(1);
  });

  it('show the instruction behind an unhandled I/O exit, in 16-bit code for real mode', () => {
    using g = realModeGuest([0xe6, 0x80, 0xf4]); // out 0x80, al; hlt
    const e = failure(() => runUntilHalt(g.vcpu));
    // SVM and VMX exit with rip on the out; PVM emulates it and exits past it.
    expect([0x1000n, 0x1002n]).toContain(e.regs.rip);
    expect(e.message).toMatch(/^unhandled io exit: io\n  mode real, rip 0x100[02] /);
    if (e.regs.rip === 0x1002n) expect(e.message).toMatch(/the io instruction at 0x1000 completed before the exit/);
    expect(e.disassembly.slice(0, 2)).toEqual(['0x1000: e6 80                    out 80h,al', '0x1002: f4                       hlt']);
  });

  it('name a triple fault as a shutdown, and say when the vCPU state is the reset state', () => {
    // Protected mode: a real-mode fault vectors through the IVT, which PVM
    // reads past its limit instead of faulting, so it never triple-faults.
    using g = realModeGuest([0x0f, 0x0b]); // ud2, and no IDT
    setupMode(g.vcpu, { mode: 'protected', entry: 0x1000 });
    g.vcpu.setSregs({ idt: { base: 0n, limit: 0 } });
    const e = failure(() => runUntilHalt(g.vcpu));
    expect(e.exit.reason).toBe('shutdown');
    expect(e.message).toMatch(/^the guest stopped unexpectedly: shutdown\n  mode (protected|real), /);
    // AMD's SVM resets the vCPU on a shutdown; other backends keep rip at the ud2.
    if (e.regs.rip === 0xfff0n) expect(e.message).toMatch(/reset by the shutdown/);
    else expect(e.disassembly[0]).toMatch(/ud2/);
  });
});
