// What a user sees when a guest stops unexpectedly: the exit, the mode, rip,
// the control registers and the code at rip, disassembled by iced-x86.
import type { IoExit, VmExit } from '../core/exits';
import { modeOf, type GuestMode } from './modes';
import type { Regs, Sregs } from '../core/regs';
import { Vcpu } from '../core/vcpu';
import { invalidArgType, validateInstance, validateInteger, validateObject, validateOneOf, validateString, validateU64, validateUint8Array } from '../core/validate';

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
  validateUint8Array(bytes, 'bytes');
  ip = validateU64(ip, 'ip');
  validateOneOf(bitness, 'bitness', [16, 32, 64]);
  validateInteger(max, 'max', 0, 0x7fffffff);
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

const PREFIXES = new Set([0x66, 0x67, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65]);

/**
 * The length of the port-I/O instruction at `bytes[at]` that made `exit`
 * (same direction, and the same port for the imm8 forms), or 0.
 */
export function ioInstructionLength(bytes: Uint8Array, at: number, exit: IoExit): number {
  let i = at;
  while (i < bytes.length && i - at < 14 && PREFIXES.has(bytes[i]!)) i++;
  const op = bytes[i];
  if (op === undefined) return 0;
  const isIn = exit.direction === 'in';
  if (op >= 0xe4 && op <= 0xe7) {
    // in al/ax/eax, imm8 (e4, e5); out imm8, al/ax/eax (e6, e7)
    const ok = (op < 0xe6) === isIn && bytes[i + 1] === exit.port;
    return ok && i + 1 < bytes.length ? i + 2 - at : 0;
  }
  if (op >= 0xec && op <= 0xef) return (op < 0xee) === isIn ? i + 1 - at : 0; // in/out with dx
  if (op >= 0x6c && op <= 0x6f) return (op < 0x6e) === isIn ? i + 1 - at : 0; // ins/outs
  return 0;
}

/**
 * Where the instruction behind an I/O exit starts, relative to rip: 0 when
 * rip still points at it (SVM and VMX complete the access on the next
 * KVM_RUN), or minus its length when the backend completed it before
 * exiting (PVM emulates CPL0 code, so rip is already past it). Undefined
 * when neither reading fits the bytes. `bytes` holds the code from
 * `rip - before` on.
 */
export function ioInstructionOffset(bytes: Uint8Array, before: number, exit: IoExit): number | undefined {
  if (ioInstructionLength(bytes, before, exit) > 0) return 0;
  for (let k = 1; k <= Math.min(before, 15); k++) {
    if (ioInstructionLength(bytes, before - k, exit) !== k) continue;
    // The shortest match may have left the instruction's prefixes out.
    while (k < Math.min(before, 15) && PREFIXES.has(bytes[before - k - 1]!)) k++;
    return -k;
  }
  return undefined;
}

// The fields the report prints, by exit reason.
const EXIT_FIELDS: Record<string, Record<string, 'bigint' | 'number' | 'array'>> = {
  fail_entry: { hardwareReason: 'bigint' },
  internal_error: { suberror: 'number', data: 'array' },
  exception: { exception: 'number', errorCode: 'number' },
  unknown: { exitReason: 'number', hardwareReason: 'bigint' },
};

function validateExitFields(exit: unknown): void {
  const o = validateObject(exit, 'exit');
  const reason = validateString(o.reason, 'exit.reason');
  for (const [k, type] of Object.entries(EXIT_FIELDS[reason] ?? {})) {
    const v = o[k];
    if (type === 'array') {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'bigint' || (typeof x === 'number' && Number.isInteger(x)))) {
        throw invalidArgType(`exit.${k}`, 'an array of integers', v);
      }
    } else if (type === 'bigint' ? typeof v !== 'bigint' : typeof v !== 'number' || !Number.isFinite(v)) {
      throw invalidArgType(`exit.${k}`, `of type ${type}`, v);
    }
  }
}

/** Builds the {@link GuestError} for an exit, reading the vCPU's state and the code at rip. */
export function guestError(vcpu: Vcpu, exit: VmExit, why = 'the guest stopped unexpectedly'): GuestError {
  validateInstance(vcpu, 'vcpu', Vcpu);
  validateExitFields(exit);
  validateString(why, 'why');
  const regs = vcpu.getRegs();
  const sregs = vcpu.getSregs();
  const mode = modeOf(sregs);
  const linear = mode === 'long' ? regs.rip : (sregs.cs.base + regs.rip) & 0xffffffffn;
  // Up to 16 bytes before rip too: some backends exit past the instruction.
  let window: { bytes: Uint8Array; before: number } | undefined;
  try {
    const t = vcpu.translate(linear);
    if (t.valid) {
      const slot = vcpu.vm.findSlot(t.physicalAddress);
      if (slot) {
        const off = Number(t.physicalAddress - slot.guestPhysAddr);
        const pageStart = off - Number(t.physicalAddress & 0xfffn); // stay in rip's page: the one before may map elsewhere
        const from = Math.max(pageStart, off - 16);
        window = { bytes: slot.bytes.slice(from, Math.min(off + 16, slot.size)), before: off - from };
      }
    }
  } catch {
    // no translation: the report says so
  }
  let start = 0;
  if (window && exit.reason === 'io') start = ioInstructionOffset(window.bytes, window.before, exit) ?? 0;
  const codeBytes = window?.bytes.slice(window.before + start);
  const codeAt = linear + BigInt(start);
  const disassembly = codeBytes ? disassemble(codeBytes, codeAt, BITNESS[mode]) ?? [] : [];
  const past = start < 0 ? ` (the ${exit.reason} instruction at ${hex(codeAt)} completed before the exit, as on KVM backends that emulate it)` : '';
  const lines = [
    `${why}: ${exitSummary(exit)}`,
    `  mode ${mode}, rip ${hex(regs.rip)}${past} (cs ${hex(sregs.cs.selector)} base ${hex(sregs.cs.base)}), rsp ${hex(regs.rsp)}, rflags ${hex(regs.rflags)}`,
    `  cr0 ${hex(sregs.cr0)} cr2 ${hex(sregs.cr2)} cr3 ${hex(sregs.cr3)} cr4 ${hex(sregs.cr4)} efer ${hex(sregs.efer)}`,
    codeBytes
      ? disassembly.length
        ? `  code at ${start < 0 ? hex(codeAt) : 'rip'}:\n${disassembly.map((l) => `    ${l}`).join('\n')}`
        : `  bytes at rip: ${[...codeBytes].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`
      : `  rip ${hex(linear)} maps to no guest memory`,
  ];
  if (exit.reason === 'shutdown' && sregs.cs.selector === 0xf000 && regs.rip === 0xfff0n) {
    lines.push('  (the vCPU was reset by the shutdown, as AMD SVM does: the registers show the reset state, not the fault)');
  }
  return new GuestError({ exit, mode, regs, sregs, codeBytes, disassembly, message: lines.join('\n') });
}
