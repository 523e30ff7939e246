// kvm-test: smoke
import { describe, expect, it } from 'vitest';
import { GREETING, runHello } from '../../../examples/hello-real-mode';
import { GuestMemory, MemFlag, setupMode } from '../../../lib';
import { CODE, realModeGuest, runToExit } from '../helpers';

describe('real-mode guests', () => {
  it('runs the hello example: its output, exits and final registers', () => {
    const { output, exits, rip, rsi } = runHello();
    expect(output).toBe(GREETING);
    expect(exits.filter((e) => e !== 'intr')).toEqual([...Array(GREETING.length).fill('io'), 'hlt']);
    // hlt is at 0x100e; rip points past it. si is one past the NUL.
    expect(rip).toBe(0x100fn);
    expect(rsi).toBe(BigInt(0x1010 + GREETING.length + 1));
  });

  it('answers `in` from JavaScript, and the guest sees the value', () => {
    using g = realModeGuest([
      0xba, 0x10, 0x00, // mov dx, 0x10
      0xec, //             in  al, dx
      0x88, 0xc3, //       mov bl, al
      0xfe, 0xc0, //       inc al
      0xee, //             out dx, al
      0xba, 0x12, 0x00, // mov dx, 0x12
      0xed, //             in  ax, dx
      0x89, 0xc1, //       mov cx, ax
      0xf4, //             hlt
    ]);
    const first = runToExit(g.vcpu);
    expect(first).toMatchObject({ reason: 'io', direction: 'in', port: 0x10, size: 1, count: 1 });
    if (first.reason !== 'io') throw new Error('unreachable');
    first.respond(0x41);

    const out = runToExit(g.vcpu);
    expect(out).toMatchObject({ reason: 'io', direction: 'out', port: 0x10, size: 1, value: 0x42 });

    const wide = runToExit(g.vcpu);
    expect(wide).toMatchObject({ reason: 'io', direction: 'in', port: 0x12, size: 2 });
    if (wide.reason !== 'io') throw new Error('unreachable');
    wide.respond(0xbeef);

    expect(runToExit(g.vcpu).reason).toBe('hlt');
    const regs = g.vcpu.getRegs();
    expect(regs.rbx & 0xffn).toBe(0x41n);
    expect(regs.rcx & 0xffffn).toBe(0xbeefn);
  });

  it('turns a write to a read-only slot into an MMIO exit and leaves the memory unchanged', () => {
    using rom = GuestMemory.allocate(0x1000); // declared first: disposed after the VM
    using g = realModeGuest([
      0xb8, 0x00, 0x10, //             mov ax, 0x1000
      0x8e, 0xd8, //                   mov ds, ax
      0xc6, 0x06, 0x00, 0x00, 0x55, // mov byte [0], 0x55   ; gpa 0x10000
      0xf4, //                         hlt
    ]);
    rom.bytes[0] = 0xaa;
    g.vm.addSlot({ guestPhysAddr: 0x10000, memory: rom, flags: MemFlag.READONLY });

    const exit = runToExit(g.vcpu);
    expect(exit).toMatchObject({ reason: 'mmio', address: 0x10000n, length: 1, isWrite: true, value: 0x55n });
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    expect(rom.bytes[0]).toBe(0xaa);
  });

  it('turns access to unbacked guest-physical memory into MMIO exits, reads answered from JavaScript', () => {
    using g = realModeGuest([
      0xb8, 0x00, 0x20, // mov ax, 0x2000
      0x8e, 0xd8, //       mov ds, ax
      0xa0, 0x10, 0x00, // mov al, [0x10]     ; gpa 0x20010: no slot
      0x88, 0xc3, //       mov bl, al
      0xfe, 0xc0, //       inc al
      0xa2, 0x20, 0x00, // mov [0x20], al     ; gpa 0x20020
      0xf4, //             hlt
    ]);
    const read = runToExit(g.vcpu);
    expect(read).toMatchObject({ reason: 'mmio', address: 0x20010n, length: 1, isWrite: false });
    if (read.reason !== 'mmio') throw new Error('unreachable');
    read.respond(0x77);

    const write = runToExit(g.vcpu);
    expect(write).toMatchObject({ reason: 'mmio', address: 0x20020n, length: 1, isWrite: true, value: 0x78n });
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    expect(g.vcpu.getRegs().rbx & 0xffn).toBe(0x77n);
  });

  it('reports a triple fault as a shutdown exit', () => {
    // In protected mode: PVM vectors a real-mode fault through the IVT
    // whatever its limit, so real mode cannot be made to triple-fault there.
    using g = realModeGuest([0x0f, 0x0b]); // ud2, with no usable IDT
    setupMode(g.vcpu, { mode: 'protected', entry: CODE });
    g.vcpu.setSregs({ idt: { base: 0n, limit: 0 } });
    expect(runToExit(g.vcpu).reason).toBe('shutdown');
  });

  it('shares guest memory with JavaScript without copies, both ways', () => {
    using g = realModeGuest([
      0xa0, 0x00, 0x30, // mov al, [0x3000]
      0xfe, 0xc0, //       inc al
      0xa2, 0x01, 0x30, // mov [0x3001], al
      0xf4, //             hlt
    ]);
    g.memory.bytes[0x3000] = 41;
    expect(runToExit(g.vcpu).reason).toBe('hlt');
    expect(g.memory.bytes[0x3001]).toBe(42);
    expect(g.vcpu.getRegs().rip).toBe(BigInt(CODE + 9));
  });
});
