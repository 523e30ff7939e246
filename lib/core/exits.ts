import { constants as osConstants } from 'node:os';
import { binding } from './binding';
import { ExitReason, SystemEventType } from './constants';
import { KvmError } from './errors';
import { invalidArgType, invalidArgValue, outOfRange, validateInstance, validateInteger, validateU64 } from './validate';

/** The guest wrote to or read from an I/O port (`KVM_EXIT_IO`). */
export interface IoExit {
  reason: 'io';
  direction: 'in' | 'out';
  port: number;
  /** Bytes per access: 1, 2 or 4. */
  size: number;
  /** Accesses in this exit (more than 1 for `rep ins/outs`). */
  count: number;
  /**
   * The bytes moved, `size * count` of them, viewed in place in the kvm_run
   * area: for `out`, what the guest wrote; for `in`, write the answer here
   * (or call {@link IoExit.respond}) before the next run. Valid until then.
   */
  data: Uint8Array;
  /** For `out`: the first access as a little-endian number. */
  value: number;
  /**
   * For `in`: supply the value(s) the guest reads, little-endian per
   * access. Like every exit's answer, a `KvmError` (`EBADF`) once the
   * vCPU or its VM is closed.
   */
  respond(value: number | ArrayLike<number>): void;
}

/** The guest touched a guest-physical address with no memory behind it, or wrote to a read-only slot (`KVM_EXIT_MMIO`). */
export interface MmioExit {
  reason: 'mmio';
  /** Guest-physical address of the access. */
  address: bigint;
  /** Access size in bytes, 1 to 8. */
  length: number;
  isWrite: boolean;
  /** For writes, the bytes written; for reads, write the answer here (or call {@link MmioExit.respond}). */
  data: Uint8Array;
  /** For writes: the written bytes as a little-endian bigint. */
  value: bigint;
  /** For reads: supply the value the guest reads (`EBADF` once the vCPU is closed). */
  respond(value: number | bigint | ArrayLike<number>): void;
}

/** `hlt` with no in-kernel interrupt controller (`KVM_EXIT_HLT`). */
export interface HltExit { reason: 'hlt' }
/** Triple fault or similar: the guest is dead (`KVM_EXIT_SHUTDOWN`). */
export interface ShutdownExit { reason: 'shutdown' }
/** The run was interrupted by a signal or {@link Vcpu.kick} (`KVM_EXIT_INTR`). */
export interface IntrExit { reason: 'intr' }
/** VM entry failed; `hardwareReason` is the VMX/SVM code (`KVM_EXIT_FAIL_ENTRY`). */
export interface FailEntryExit { reason: 'fail_entry'; hardwareReason: bigint; cpu: number }
/** KVM could not handle something, often emulation (`KVM_EXIT_INTERNAL_ERROR`). */
export interface InternalErrorExit { reason: 'internal_error'; suberror: number; data: bigint[] }
/** A single step or breakpoint (`KVM_EXIT_DEBUG`). */
export interface DebugExit { reason: 'debug'; exception: number; pc: bigint; dr6: bigint; dr7: bigint }
/** Shutdown, reset or crash requested by the guest (`KVM_EXIT_SYSTEM_EVENT`). */
export interface SystemEventExit {
  reason: 'system_event';
  type: (typeof SystemEventType)[keyof typeof SystemEventType] | 'unknown';
  rawType: number;
  data: bigint[];
}
/** An exception that KVM reflected to user space (`KVM_EXIT_EXCEPTION`). */
export interface ExceptionExit { reason: 'exception'; exception: number; errorCode: number }
/** A hypercall KVM forwards (`KVM_EXIT_HYPERCALL`, with `KVM_CAP_EXIT_HYPERCALL`): answer with {@link HypercallExit.respond}. */
export interface HypercallExit {
  reason: 'hypercall';
  nr: bigint;
  args: bigint[];
  /** Bit 0: the guest was in 64-bit mode. */
  flags: number;
  /** The value the guest's hypercall returns (in rax). */
  respond(ret: bigint | number): void;
}
/** A `rdmsr` KVM forwards (`KVM_EXIT_X86_RDMSR`, with `KVM_CAP_X86_USER_SPACE_MSR`). */
export interface RdmsrExit {
  reason: 'rdmsr';
  index: number;
  /** Why it came to user space: `KVM_MSR_EXIT_REASON_*` (1 invalid, 2 unknown, 4 filter). */
  why: number;
  /** Answer with the value, or with `error: true` to inject #GP. */
  respond(value: bigint | number | { error: true }): void;
}
/** A `wrmsr` KVM forwards (`KVM_EXIT_X86_WRMSR`). */
export interface WrmsrExit {
  reason: 'wrmsr';
  index: number;
  why: number;
  value: bigint;
  /** Refuse the write: the guest gets #GP. */
  fail(): void;
}
/** The guest ended a level-triggered interrupt on the IOAPIC (`KVM_EXIT_IOAPIC_EOI`, split irqchip). */
export interface IoapicEoiExit { reason: 'ioapic_eoi'; vector: number }
/** A guest access to the TPR (`KVM_EXIT_TPR_ACCESS`). */
export interface TprAccessExit { reason: 'tpr_access'; rip: bigint; isWrite: boolean }
/** An access KVM could not serve from memory (`KVM_EXIT_MEMORY_FAULT`, guest_memfd). */
export interface MemoryFaultExit { reason: 'memory_fault'; flags: bigint; gpa: bigint; size: bigint }
/** KVM noticed the guest made no progress (`KVM_EXIT_NOTIFY`, `KVM_CAP_X86_NOTIFY_VMEXIT`). */
export interface NotifyExit { reason: 'notify'; flags: number }
/** Exits without fields of their own. */
export interface SimpleExit {
  reason: 'irq_window_open' | 'set_tpr' | 'nmi' | 'dirty_ring_full' | 'ap_reset_hold' | 'bus_lock' | 'hyperv' | 'xen';
}

/** Any other exit; `exitReason` is the raw `KVM_EXIT_*` number. */
export interface UnknownExit { reason: 'unknown'; exitReason: number; hardwareReason: bigint }

/** Every VM exit, discriminated by `reason`. */
export type VmExit =
  | IoExit | MmioExit | HltExit | ShutdownExit | IntrExit | FailEntryExit
  | InternalErrorExit | DebugExit | SystemEventExit | ExceptionExit | HypercallExit | RdmsrExit | WrmsrExit
  | IoapicEoiExit | TprAccessExit | MemoryFaultExit | NotifyExit | SimpleExit | UnknownExit;

const L = binding.runLayout as Record<string, number>;
const at = (name: string): number => {
  const v = L[name];
  if (v === undefined) throw new Error(`kvm_run layout has no ${name}`);
  return v;
};
const OFF = {
  exitReason: at('exitReason'), ioDirection: at('ioDirection'), ioSize: at('ioSize'), ioPort: at('ioPort'),
  ioCount: at('ioCount'), ioDataOffset: at('ioDataOffset'), mmioPhysAddr: at('mmioPhysAddr'),
  mmioData: at('mmioData'), mmioLen: at('mmioLen'), mmioIsWrite: at('mmioIsWrite'),
  failEntryReason: at('failEntryReason'), failEntryCpu: at('failEntryCpu'), hwExitReason: at('hwExitReason'),
  exException: at('exException'), exErrorCode: at('exErrorCode'), internalSuberror: at('internalSuberror'),
  internalNdata: at('internalNdata'), internalData: at('internalData'), debugException: at('debugException'),
  debugPc: at('debugPc'), debugDr6: at('debugDr6'), debugDr7: at('debugDr7'),
  systemEventType: at('systemEventType'), systemEventNdata: at('systemEventNdata'),
  systemEventData: at('systemEventData'), hypercallNr: at('hypercallNr'), hypercallArgs: at('hypercallArgs'),
  hypercallRet: at('hypercallRet'), hypercallFlags: at('hypercallFlags'), tprAccessRip: at('tprAccessRip'),
  tprAccessIsWrite: at('tprAccessIsWrite'), eoiVector: at('eoiVector'), msrError: at('msrError'),
  msrReason: at('msrReason'), msrIndex: at('msrIndex'), msrData: at('msrData'), notifyFlags: at('notifyFlags'),
  exitUnion: at('exitUnion'),
};

const SIMPLE: Record<number, SimpleExit['reason']> = {
  [ExitReason.IRQ_WINDOW_OPEN]: 'irq_window_open',
  [ExitReason.SET_TPR]: 'set_tpr',
  [ExitReason.NMI]: 'nmi',
  [ExitReason.DIRTY_RING_FULL]: 'dirty_ring_full',
  [ExitReason.AP_RESET_HOLD]: 'ap_reset_hold',
  [ExitReason.X86_BUS_LOCK]: 'bus_lock',
  [ExitReason.HYPERV]: 'hyperv',
  [ExitReason.XEN]: 'xen',
};

// kvm_run's header and exit union: what decodeExit may read.
const RUN_MIN_BYTES = 288;

// A value for `size` little-endian bytes: unsigned, or negative as two's complement.
function checkWord(value: unknown, name: string, size: number): bigint {
  const bits = BigInt(size * 8);
  const min = -(1n << (bits - 1n));
  const max = (1n << bits) - 1n;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw outOfRange(name, 'a safe integer', value);
    value = BigInt(value);
  }
  if (typeof value !== 'bigint') throw invalidArgType(name, 'of type number or bigint', value);
  if (value < min || value > max) throw outOfRange(name, `>= ${min} && <= ${max} (${size} bytes)`, value);
  return value as bigint;
}

// An array-like of at most `max` elements.
function checkList(value: unknown, name: string, max: number): unknown[] {
  if (typeof value !== 'object' || value === null || typeof (value as { length?: unknown }).length !== 'number') {
    throw invalidArgType(name, 'of type number or an array-like object', value);
  }
  const length = validateInteger((value as ArrayLike<unknown>).length, `${name}.length`, 0, max);
  return Array.from({ length }, (_, i) => (value as ArrayLike<unknown>)[i]);
}

// A little-endian word of an exit's data: the sizes exits have, without a loop.
function readWord(bytes: Uint8Array, size: number): number {
  if (size === 1) return bytes[0]! | 0;
  if (size === 2) return bytes[0]! | (bytes[1]! << 8);
  if (size === 4) return (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0;
  return readLE(bytes, 0, size);
}

function readLE(bytes: Uint8Array, offset: number, size: number): number {
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + (bytes[offset + i] ?? 0);
  return v;
}

function writeLE(bytes: Uint8Array, offset: number, size: number, value: bigint): void {
  for (let i = 0; i < size; i++) {
    bytes[offset + i] = Number(value & 0xffn);
    value >>= 8n;
  }
}

// An answer goes into kvm_run, which closing the vCPU (or its VM) unmaps
// and detaches: an answer then would vanish, so it is refused.
function checkAnswerable(run: ArrayBufferLike): void {
  if (run.byteLength === 0) {
    throw new KvmError(osConstants.errno.EBADF, 'KVM_RUN', 'the vCPU is closed, so this exit can no longer be answered');
  }
}

// A 64-bit register value given as signed (a negative errno) or unsigned.
function signedOrUnsigned64(v: unknown, name: string): bigint {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw outOfRange(name, 'a safe integer', v);
    return BigInt.asUintN(64, BigInt(v));
  }
  if (typeof v !== 'bigint') throw invalidArgType(name, 'of type bigint or number', v);
  if (v < -(1n << 63n) || v >= 1n << 64n) throw outOfRange(name, '>= -(2n ** 63n) && < 2n ** 64n', v);
  return BigInt.asUintN(64, v);
}

function u64s(view: DataView, offset: number, count: number): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < Math.min(count, 16); i++) out.push(view.getBigUint64(offset + 8 * i, true));
  return out;
}

/**
 * Decodes the exit now in a vCPU's kvm_run area (`view` and `bytes` cover
 * the whole mmap). Exposed for tests; {@link Vcpu.run} calls it for you.
 */
export function decodeExit(view: DataView, bytes: Uint8Array): VmExit {
  validateInstance(view, 'view', DataView);
  validateInstance(bytes, 'bytes', Uint8Array);
  if (view.byteLength < RUN_MIN_BYTES) throw outOfRange('view.byteLength', `>= ${RUN_MIN_BYTES} (a kvm_run area)`, view.byteLength);
  if (bytes.length < RUN_MIN_BYTES) throw outOfRange('bytes.length', `>= ${RUN_MIN_BYTES} (a kvm_run area)`, bytes.length);
  return new RunArea(view, bytes).decode();
}

/**
 * @internal One vCPU's kvm_run area, known good: its views, and the
 * windows into it that exits hand out as `data`. A window is a view of
 * kvm_run either way (the next exit overwrites it), so the vCPU hands out
 * the same one instead of making one per exit. Everything an exit reads
 * sits in this object and kvm_run: after the ~9 µs of an exit each other
 * object touched is one more cold cache line.
 */
export class RunArea {
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  readonly #size: number;
  readonly #windows = new Map<number, Uint8Array>();
  #lastKey = -1;
  #last: Uint8Array | undefined;

  constructor(view: DataView, bytes: Uint8Array) {
    this.#view = view;
    this.#bytes = bytes;
    this.#size = bytes.length;
  }

  #window(offset: number, length: number): Uint8Array {
    const key = offset * 65536 + length;
    if (key === this.#lastKey) return this.#last!;
    let w = this.#windows.get(key);
    if (w === undefined) {
      w = this.#bytes.subarray(offset, offset + length);
      if (this.#windows.size < 64) this.#windows.set(key, w);
    }
    this.#lastKey = key;
    this.#last = w;
    return w;
  }

  /** The exit in kvm_run (`reason`: its `exit_reason`, when the caller has it): no checks per exit. */
  decode(reason: number = this.#view.getUint32(OFF.exitReason, true)): VmExit {
    const view = this.#view;
    switch (reason) {
      case ExitReason.IO: {
        const size = view.getUint8(OFF.ioSize);
        const count = view.getUint32(OFF.ioCount, true);
        // A u64 in kvm_run, read as two words: no bigint per exit.
        const offset = view.getUint32(OFF.ioDataOffset, true) + view.getUint32(OFF.ioDataOffset + 4, true) * 2 ** 32;
        const length = size * count;
        if (offset + length > this.#size) throw invalidArgValue('bytes', this.#bytes, `is too short: io exit data at ${offset}+${length} is outside kvm_run`);
        const data = this.#window(offset, length);
        return new IoExitRecord(view.getUint8(OFF.ioDirection) === 0 ? 'in' : 'out', view.getUint16(OFF.ioPort, true), size, count, data, readWord(data, size));
      }
      case ExitReason.MMIO: {
        const length = Math.min(view.getUint32(OFF.mmioLen, true), 8);
        const data = this.#window(OFF.mmioData, length);
        // One bigint per exit, not one per byte: up to 6 bytes fit a number.
        const value = length === 8 ? view.getBigUint64(OFF.mmioData, true) : BigInt(readWord(data, length));
        return new MmioExitRecord(view.getBigUint64(OFF.mmioPhysAddr, true), length, view.getUint8(OFF.mmioIsWrite) !== 0, data, value);
      }
      default:
        return decodeOther(view, reason);
    }
  }
}

// The two exits a device loop sees most, as classes: their data is own
// properties as in a literal, but `respond` lives on the prototype, so an
// exit costs one object rather than an object, a closure and its context.
// `respond` is a getter handing out a function bound to its exit, so that
// `const { respond } = exit` still works.
class IoExitRecord implements IoExit {
  readonly reason = 'io';
  constructor(
    readonly direction: 'in' | 'out',
    readonly port: number,
    readonly size: number,
    readonly count: number,
    readonly data: Uint8Array,
    readonly value: number,
  ) {}

  get respond(): (value: number | ArrayLike<number>) => void {
    return (value) => {
      const { count, size, data } = this;
      const values = typeof value === 'number' ? [value] : checkList(value, 'value', count);
      const words = values.map((v, i) => checkWord(v, typeof value === 'number' ? 'value' : `value[${i}]`, size));
      checkAnswerable(data.buffer);
      words.forEach((v, i) => writeLE(data, i * size, size, v));
    };
  }
}

class MmioExitRecord implements MmioExit {
  readonly reason = 'mmio';
  constructor(
    readonly address: bigint,
    readonly length: number,
    readonly isWrite: boolean,
    readonly data: Uint8Array,
    readonly value: bigint,
  ) {}

  get respond(): (value: number | bigint | ArrayLike<number>) => void {
    return (v) => {
      const { length, data } = this;
      if (typeof v === 'number' || typeof v === 'bigint') {
        const word = checkWord(v, 'value', length || 1);
        checkAnswerable(data.buffer);
        writeLE(data, 0, length, word);
      } else {
        const bytes = checkList(v, 'value', length).map((b, i) => validateInteger(b, `value[${i}]`, 0, 255));
        checkAnswerable(data.buffer);
        data.set(bytes);
      }
    };
  }
}

// Every exit but io and mmio (RunArea.decode's own).
function decodeOther(view: DataView, reason: number): VmExit {
  switch (reason) {
    case ExitReason.HLT:
      return { reason: 'hlt' };
    case ExitReason.SHUTDOWN:
      return { reason: 'shutdown' };
    case ExitReason.INTR:
      return { reason: 'intr' };
    case ExitReason.FAIL_ENTRY:
      return {
        reason: 'fail_entry',
        hardwareReason: view.getBigUint64(OFF.failEntryReason, true),
        cpu: view.getUint32(OFF.failEntryCpu, true),
      };
    case ExitReason.INTERNAL_ERROR:
      return {
        reason: 'internal_error',
        suberror: view.getUint32(OFF.internalSuberror, true),
        data: u64s(view, OFF.internalData, view.getUint32(OFF.internalNdata, true)),
      };
    case ExitReason.DEBUG:
      return {
        reason: 'debug',
        exception: view.getUint32(OFF.debugException, true),
        pc: view.getBigUint64(OFF.debugPc, true),
        dr6: view.getBigUint64(OFF.debugDr6, true),
        dr7: view.getBigUint64(OFF.debugDr7, true),
      };
    case ExitReason.SYSTEM_EVENT: {
      const rawType = view.getUint32(OFF.systemEventType, true);
      return {
        reason: 'system_event',
        type: SystemEventType[rawType as keyof typeof SystemEventType] ?? 'unknown',
        rawType,
        data: u64s(view, OFF.systemEventData, view.getUint32(OFF.systemEventNdata, true)),
      };
    }
    case ExitReason.EXCEPTION:
      return {
        reason: 'exception',
        exception: view.getUint32(OFF.exException, true),
        errorCode: view.getUint32(OFF.exErrorCode, true),
      };
    case ExitReason.HYPERCALL:
      return {
        reason: 'hypercall',
        nr: view.getBigUint64(OFF.hypercallNr, true),
        args: u64s(view, OFF.hypercallArgs, 6),
        flags: view.getUint32(OFF.hypercallFlags, true),
        respond(ret) {
          const word = signedOrUnsigned64(ret, 'ret');
          checkAnswerable(view.buffer);
          view.setBigUint64(OFF.hypercallRet, word, true);
        },
      };
    case ExitReason.X86_RDMSR:
      return {
        reason: 'rdmsr',
        index: view.getUint32(OFF.msrIndex, true),
        why: view.getUint32(OFF.msrReason, true),
        respond(value) {
          if (typeof value === 'object' && value !== null && (value as { error?: unknown }).error === true) {
            checkAnswerable(view.buffer);
            view.setUint8(OFF.msrError, 1);
            return;
          }
          const word = validateU64(value, 'value');
          checkAnswerable(view.buffer);
          view.setUint8(OFF.msrError, 0);
          view.setBigUint64(OFF.msrData, word, true);
        },
      };
    case ExitReason.X86_WRMSR:
      return {
        reason: 'wrmsr',
        index: view.getUint32(OFF.msrIndex, true),
        why: view.getUint32(OFF.msrReason, true),
        value: view.getBigUint64(OFF.msrData, true),
        fail() {
          checkAnswerable(view.buffer);
          view.setUint8(OFF.msrError, 1);
        },
      };
    case ExitReason.IOAPIC_EOI:
      return { reason: 'ioapic_eoi', vector: view.getUint8(OFF.eoiVector) };
    case ExitReason.TPR_ACCESS:
      return { reason: 'tpr_access', rip: view.getBigUint64(OFF.tprAccessRip, true), isWrite: view.getUint32(OFF.tprAccessIsWrite, true) !== 0 };
    case ExitReason.NOTIFY:
      return { reason: 'notify', flags: view.getUint32(OFF.notifyFlags, true) };
    case ExitReason.MEMORY_FAULT:
      return {
        reason: 'memory_fault',
        flags: view.getBigUint64(OFF.exitUnion, true),
        gpa: view.getBigUint64(OFF.exitUnion + 8, true),
        size: view.getBigUint64(OFF.exitUnion + 16, true),
      };
    default: {
      const simple = SIMPLE[reason];
      if (simple) return { reason: simple };
      return { reason: 'unknown', exitReason: reason, hardwareReason: view.getBigUint64(OFF.hwExitReason, true) };
    }
  }
}
