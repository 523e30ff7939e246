// kvm-test: needs=hw_breakpoints
import { describe, expect, it } from 'vitest';
import { cGuest, symbol } from '../guests';

describe('hardware breakpoints', () => {
  it('stop execution with a debug exit, rip at the breakpoint', () => {
    using g = cGuest('long');
    const main = symbol('long', 'main');
    g.vcpu.setGuestDebug({ breakpoints: [main] });
    expect(g.vcpu.run()).toMatchObject({ reason: 'debug', pc: main });
    expect(g.vcpu.getRegs().rip).toBe(main);
  });
});
