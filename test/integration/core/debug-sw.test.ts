// kvm-test: needs=sw_breakpoints
import { describe, expect, it } from 'vitest';
import { cGuest, symbol } from '../guests';

describe('software breakpoints', () => {
  it('turn a guest int3 into a debug exit at its address, and the guest goes on once the byte is restored', () => {
    using g = cGuest('long');
    const main = symbol('long', 'main');
    const code = g.vm.memoryAt(main, 1);
    const original = code[0]!;
    code[0] = 0xcc; // int3
    g.vcpu.setGuestDebug({ softwareBreakpoints: true });
    expect(g.vcpu.run()).toMatchObject({ reason: 'debug', exception: 3, pc: main });
    code[0] = original;
    g.vcpu.setRegs({ rip: main });
    g.vcpu.setGuestDebug(null);
    expect(g.run()).toEqual({ output: 'Hello from long mode!\n', eax: 42, at0x400: 42 });
  });
});
