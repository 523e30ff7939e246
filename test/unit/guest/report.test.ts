import { describe, expect, it } from 'vitest';
import type { IoExit } from '../../../lib';
import { ioInstructionOffset } from '../../../lib/guest/report';

const io = (direction: 'in' | 'out', port: number): IoExit =>
  ({ reason: 'io', direction, port, size: 1, count: 1, data: new Uint8Array(1), value: 0, respond() {} });

describe('finding the instruction behind an I/O exit', () => {
  // mov al, 0xe6; out 0x80, al; hlt   at offsets 0, 2, 4
  const code = new Uint8Array([0xb0, 0xe6, 0xe6, 0x80, 0xf4]);

  it('takes rip as is when it points at the I/O instruction (SVM, VMX)', () => {
    expect(ioInstructionOffset(code, 2, io('out', 0x80))).toBe(0);
  });

  it('steps back over an instruction the backend already completed (PVM)', () => {
    expect(ioInstructionOffset(code, 4, io('out', 0x80))).toBe(-2);
  });

  it('matches direction and port, so data bytes that look like opcodes do not fool it', () => {
    expect(ioInstructionOffset(code, 4, io('out', 0x81))).toBeUndefined();
    expect(ioInstructionOffset(code, 4, io('in', 0x80))).toBeUndefined();
  });

  it('knows the dx and string forms with prefixes', () => {
    // 66 ef: out dx, ax ; f3 6e: rep outsb ; ec: in al, dx
    expect(ioInstructionOffset(new Uint8Array([0x66, 0xef, 0xf4]), 2, io('out', 0x3f8))).toBe(-2);
    expect(ioInstructionOffset(new Uint8Array([0xf3, 0x6e, 0xf4]), 2, io('out', 0xe9))).toBe(-2);
    expect(ioInstructionOffset(new Uint8Array([0x90, 0xec]), 1, io('in', 0x60))).toBe(0);
  });
});
