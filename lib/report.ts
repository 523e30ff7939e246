// What a user sees when a guest stops unexpectedly: the exit, the mode, rip,
// the control registers and the code at rip, disassembled by iced-x86.
import type { VmExit } from './exits';
import { modeOf, type GuestMode } from './modes';
import type { Regs, Sregs } from './regs';
import type { Vcpu } from './vcpu';

/** Exits after which a guest cannot usefully go on. */
export type FailureExit = Extract<VmExit, { reason: 'shutdown' | 'fail_entry' | 'internal_error' | 'exception' | 'unknown' }>;

/** A guest stopped unexpectedly; the message is a readable report. */
export class GuestError extends Error {
  readonly exit: VmExit;
  readonly mode: GuestMode;
  readonly regs: Regs;
  readonly sregs: Sregs;
  /** Up to 16 bytes at rip, when rip maps to guest memory. */
  readonly codeBytes: Uint8Array | undefined;
  /** The instructions at rip, one per line (`address: text`). */
  readonly disassembly: string[];

  constructor(fields: { exit: VmExit; mode: GuestMode; regs: Regs; sregs: Sregs; codeBytes?: Uint8Array; disassembly: string[]; message: string }) {
    super(fields.message);
    this.name = 'GuestError';
    this.exit = fields.exit;
    this.mode = fields.mode;
    this.regs = fields.regs;
    this.sregs = fields.sregs;
    this.codeBytes = fields.codeBytes;
    this.disassembly = fields.disassembly;
  }
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

function exitSummary(exit: VmExit): string {
  switch (exit.reason) {
    case 'fail_entry':
      return `fail_entry (hardware reason ${hex(exit.hardwareReason)})`;
    case 'internal_error':
      return `internal_error (suberror ${exit.suberror}${exit.data.length ? `, data ${exit.data.map(hex).join(' ')}` : ''})`;
    case 'exception':
      return `exception ${exit.exception} (error code ${hex(exit.errorCode)})`;
    case 'unknown':
      return `unknown exit ${exit.exitReason} (hardware reason ${hex(exit.hardwareReason)})`;
    default:
      return exit.reason;
  }
}

const BITNESS: Record<GuestMode, 16 | 32 | 64> = { real: 16, protected: 32, paged: 32, pae: 32, long: 64 };

/** Disassembles `bytes` at `ip`; undefined when iced-x86 cannot be loaded. */
export function disassemble(bytes: Uint8Array, ip: bigint, bitness: 16 | 32 | 64, max = 4): string[] | undefined {
  let iced: typeof import('iced-x86');
  try {
    // Loaded on demand: only failure reports need it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    iced = require('iced-x86') as typeof import('iced-x86');
  } catch {
    return undefined;
  }
  const decoder = new iced.Decoder(bitness, bytes, iced.DecoderOptions.None);
  const formatter = new iced.Formatter(iced.FormatterSyntax.Nasm);
  try {
    decoder.ip = ip;
    const lines: string[] = [];
    for (const insn of decoder.decodeAll().slice(0, max)) {
      const len = insn.length as number;
      const at = Number((insn.ip as bigint) - ip);
      const raw = [...bytes.subarray(at, at + len)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      lines.push(`${hex(insn.ip as bigint)}: ${raw.padEnd(24)} ${insn.invalid ? '(invalid)' : formatter.format(insn)}`);
      insn.free();
    }
    return lines;
  } finally {
    decoder.free();
    formatter.free();
  }
}

/** Builds the {@link GuestError} for an exit, reading the vCPU's state and the code at rip. */
export function guestError(vcpu: Vcpu, exit: VmExit, why = 'the guest stopped unexpectedly'): GuestError {
  const regs = vcpu.getRegs();
  const sregs = vcpu.getSregs();
  const mode = modeOf(sregs);
  const linear = mode === 'long' ? regs.rip : (sregs.cs.base + regs.rip) & 0xffffffffn;
  let codeBytes: Uint8Array | undefined;
  try {
    const t = vcpu.translate(linear);
    if (t.valid) {
      const slot = vcpu.vm.findSlot(t.physicalAddress);
      if (slot) {
        const off = Number(t.physicalAddress - slot.guestPhysAddr);
        codeBytes = slot.bytes.slice(off, Math.min(off + 16, slot.size));
      }
    }
  } catch {
    // no translation: the report says so
  }
  const disassembly = codeBytes ? disassemble(codeBytes, linear, BITNESS[mode]) ?? [] : [];
  const lines = [
    `${why}: ${exitSummary(exit)}`,
    `  mode ${mode}, rip ${hex(regs.rip)} (cs ${hex(sregs.cs.selector)} base ${hex(sregs.cs.base)}), rsp ${hex(regs.rsp)}, rflags ${hex(regs.rflags)}`,
    `  cr0 ${hex(sregs.cr0)} cr2 ${hex(sregs.cr2)} cr3 ${hex(sregs.cr3)} cr4 ${hex(sregs.cr4)} efer ${hex(sregs.efer)}`,
    codeBytes
      ? disassembly.length
        ? `  code at rip:\n${disassembly.map((l) => `    ${l}`).join('\n')}`
        : `  bytes at rip: ${[...codeBytes].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`
      : `  rip ${hex(linear)} maps to no guest memory`,
  ];
  if (exit.reason === 'shutdown' && sregs.cs.selector === 0xf000 && regs.rip === 0xfff0n) {
    lines.push('  (the vCPU was reset by the shutdown, as AMD SVM does: the registers show the reset state, not the fault)');
  }
  return new GuestError({ exit, mode, regs, sregs, codeBytes, disassembly, message: lines.join('\n') });
}
