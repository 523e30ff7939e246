// Putting programs into guest memory: flat binaries and ELF executables.
import type { Range } from './paging';
import { Vm } from '../core/vm';
import { validateInstance, validateOneOf, validateString, validateU64, validateUint8Array } from '../core/validate';

/** A program in guest memory. */
export interface LoadedProgram {
  /** Where execution starts. */
  entry: bigint;
  /** The guest-physical ranges it occupies (pass as `avoid` to {@link setupMode}). */
  ranges: Range[];
  /** 32 or 64 for ELF files; undefined for flat binaries. */
  elfClass?: 32 | 64;
}

/** Why an ELF file could not be loaded; `code` says which rule it broke. */
export class ElfError extends Error {
  readonly code:
    | 'ERR_ELF_NOT_ELF'
    | 'ERR_ELF_TRUNCATED'
    | 'ERR_ELF_CLASS'
    | 'ERR_ELF_ENDIAN'
    | 'ERR_ELF_MACHINE'
    | 'ERR_ELF_TYPE'
    | 'ERR_ELF_NO_SEGMENTS'
    | 'ERR_ELF_SEGMENT'
    | 'ERR_ELF_OUTSIDE_MEMORY';

  constructor(code: ElfError['code'], message: string) {
    super(validateString(message, 'message'));
    validateOneOf(code, 'code', ELF_CODES);
    this.name = 'ElfError';
    this.code = code;
  }
}

const ELF_CODES: readonly ElfError['code'][] = [
  'ERR_ELF_NOT_ELF', 'ERR_ELF_TRUNCATED', 'ERR_ELF_CLASS', 'ERR_ELF_ENDIAN', 'ERR_ELF_MACHINE',
  'ERR_ELF_TYPE', 'ERR_ELF_NO_SEGMENTS', 'ERR_ELF_SEGMENT', 'ERR_ELF_OUTSIDE_MEMORY',
];

/** Copies `bytes` to guest-physical `gpa`; execution starts at its first byte. */
export function loadFlat(vm: Vm, bytes: Uint8Array, gpa: bigint | number): LoadedProgram {
  validateInstance(vm, 'vm', Vm);
  validateUint8Array(bytes, 'bytes');
  const start = validateU64(gpa, 'gpa');
  vm.memoryAt(start, bytes.length).set(bytes);
  return { entry: start, ranges: [{ start, end: start + BigInt(bytes.length), what: 'the program' }] };
}

const EM_386 = 3;
const EM_X86_64 = 62;
const ET_EXEC = 2;
const ET_DYN = 3;
const PT_LOAD = 1;

/**
 * Loads an x86 ELF executable (32- or 64-bit): each `PT_LOAD` segment is
 * copied to its physical address (`p_paddr`) and the rest of its memory
 * size (`.bss`) zeroed. Throws an {@link ElfError} for files that are not
 * ELF, truncated, of the wrong class or machine, position-independent, or
 * with segments outside the guest's memory slots.
 */
export function loadElf(vm: Vm, file: Uint8Array): LoadedProgram {
  validateInstance(vm, 'vm', Vm);
  validateUint8Array(file, 'file');
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const need = (end: number, what: string) => {
    if (end > file.byteLength) {
      throw new ElfError('ERR_ELF_TRUNCATED', `ELF file is truncated: ${what} ends at byte ${end} of a ${file.byteLength}-byte file`);
    }
  };
  need(16, 'the identification');
  if (view.getUint32(0) !== 0x7f454c46) throw new ElfError('ERR_ELF_NOT_ELF', 'not an ELF file (no \\x7fELF magic)');
  const cls = file[4];
  if (cls !== 1 && cls !== 2) throw new ElfError('ERR_ELF_CLASS', `unknown ELF class ${cls}; expected 1 (32-bit) or 2 (64-bit)`);
  if (file[5] !== 1) throw new ElfError('ERR_ELF_ENDIAN', 'big-endian ELF; x86 guests are little-endian');
  const is64 = cls === 2;
  need(is64 ? 64 : 52, 'the ELF header');
  const type = view.getUint16(16, true);
  const machine = view.getUint16(18, true);
  const expected = is64 ? EM_X86_64 : EM_386;
  if (machine !== expected) {
    throw new ElfError(
      'ERR_ELF_MACHINE',
      `ELF machine ${machine} is not ${is64 ? 'x86-64 (62)' : 'i386 (3)'} for a ${is64 ? 64 : 32}-bit file`,
    );
  }
  if (type === ET_DYN) throw new ElfError('ERR_ELF_TYPE', 'position-independent ELF (ET_DYN); link the guest with -static -no-pie at a fixed address');
  if (type !== ET_EXEC) throw new ElfError('ERR_ELF_TYPE', `ELF type ${type} is not an executable (ET_EXEC)`);

  const entry = is64 ? view.getBigUint64(24, true) : BigInt(view.getUint32(24, true));
  const phoff = is64 ? Number(view.getBigUint64(32, true)) : view.getUint32(28, true);
  const phentsize = view.getUint16(is64 ? 54 : 42, true);
  const phnum = view.getUint16(is64 ? 56 : 44, true);
  if (phentsize < (is64 ? 56 : 32)) throw new ElfError('ERR_ELF_SEGMENT', `program header entries of ${phentsize} bytes are too small`);
  need(phoff + phnum * phentsize, 'the program headers');

  const segments: { offset: number; paddr: bigint; filesz: number; memsz: number }[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (view.getUint32(p, true) !== PT_LOAD) continue;
    const seg = is64
      ? {
          offset: Number(view.getBigUint64(p + 8, true)),
          paddr: view.getBigUint64(p + 24, true),
          filesz: Number(view.getBigUint64(p + 32, true)),
          memsz: Number(view.getBigUint64(p + 40, true)),
        }
      : {
          offset: view.getUint32(p + 4, true),
          paddr: BigInt(view.getUint32(p + 12, true)),
          filesz: view.getUint32(p + 16, true),
          memsz: view.getUint32(p + 20, true),
        };
    if (seg.filesz > seg.memsz) throw new ElfError('ERR_ELF_SEGMENT', `segment ${i} has more file bytes (${seg.filesz}) than memory bytes (${seg.memsz})`);
    need(seg.offset + seg.filesz, `segment ${i}`);
    if (seg.memsz > 0) segments.push(seg);
  }
  if (segments.length === 0) throw new ElfError('ERR_ELF_NO_SEGMENTS', 'the ELF file has no PT_LOAD segments');

  // Check every segment before writing any, so a bad file changes nothing.
  const targets = segments.map((s, i) => {
    try {
      return vm.memoryAt(s.paddr, s.memsz);
    } catch {
      throw new ElfError(
        'ERR_ELF_OUTSIDE_MEMORY',
        `segment ${i} (0x${s.paddr.toString(16)}-0x${(s.paddr + BigInt(s.memsz)).toString(16)}) is not inside guest memory: add a slot there or link the guest elsewhere`,
      );
    }
  });
  segments.forEach((s, i) => {
    const dst = targets[i]!;
    dst.set(file.subarray(s.offset, s.offset + s.filesz));
    dst.fill(0, s.filesz);
  });
  return {
    entry,
    elfClass: is64 ? 64 : 32,
    ranges: segments.map((s) => ({ start: s.paddr, end: s.paddr + BigInt(s.memsz), what: 'the program' })),
  };
}
