import type { NativeVcpu } from './binding';
import { decodeExit, type DebugExit, type IoExit, type MmioExit, type VmExit } from './exits';
import { guestError } from './report';
import { KvmStats } from './stats';
import type { Regs, RegsInput, Sregs, SregsInput } from './regs';
import type { CpuidEntry } from './cpuid';
import { binding } from './binding';
import { argError } from './errors';
import type { Vm } from './vm';

/** What `KVM_TRANSLATE` says of a linear address. */
export interface Translation {
  /** The guest-physical address it maps to (meaningful when `valid`). */
  physicalAddress: bigint;
  /** Whether the guest's page tables map it at all. */
  valid: boolean;
  /** As reported by KVM; x86 KVM hard-wires it to true, so do not rely on it. */
  writeable: boolean;
  /** As reported by KVM; x86 KVM hard-wires it to false, so do not rely on it. */
  usermode: boolean;
}

/** Handlers for {@link Vcpu.runUntilHalt}; an exit with no handler is an error. */
export interface RunHandlers {
  io?(exit: IoExit): void;
  mmio?(exit: MmioExit): void;
  debug?(exit: DebugExit): void;
}

/** Options for {@link Vcpu.setGuestDebug}. */
export interface GuestDebugOptions {
  /** Exit with a `debug` exit after every guest instruction. */
  singleStep?: boolean;
  /** Up to 4 linear addresses where execution exits with `debug` (debug registers DR0-DR3). */
  breakpoints?: (bigint | number)[];
  /**
   * Guest `int3` instructions exit with `debug` (exception 3, `pc` at the
   * int3) instead of reaching the guest: write 0xCC where you want to
   * stop, and put the original byte back (or step rip past it) to go on.
   */
  softwareBreakpoints?: boolean;
}

const C = binding.constants as Record<string, number>;
const DBG = {
  ENABLE: C.KVM_GUESTDBG_ENABLE ?? 1,
  SINGLESTEP: C.KVM_GUESTDBG_SINGLESTEP ?? 2,
  USE_SW_BP: C.KVM_GUESTDBG_USE_SW_BP ?? 0x10000,
  USE_HW_BP: C.KVM_GUESTDBG_USE_HW_BP ?? 0x20000,
};

/**
 * A virtual CPU (a KVM vCPU fd with its mapped `kvm_run` area). Made by
 * {@link Vm.createVcpu}.
 */
export class Vcpu {
  /** The VM this vCPU belongs to. */
  readonly vm: Vm;
  /** @internal */
  readonly native: NativeVcpu;
  #view: DataView | undefined;
  #bytes: Uint8Array | undefined;

  /** @internal */
  constructor(native: NativeVcpu, vm: Vm) {
    this.native = native;
    this.vm = vm;
  }

  /** The vCPU id given to `KVM_CREATE_VCPU`. */
  get id(): number {
    return this.native.id;
  }

  /** The vCPU's file descriptor (-1 once closed). */
  get fd(): number {
    return this.native.fd;
  }

  /** True while a {@link Vcpu.runAsync} is in flight. */
  get running(): boolean {
    return this.native.running;
  }

  /**
   * Runs the guest on this thread until the next exit (`KVM_RUN`) and
   * returns it decoded. Blocks the event loop while the guest runs: the
   * fast path for tight exit loops. A signal to this thread ends the run
   * with an `intr` exit; just run again.
   */
  run(): VmExit {
    this.native.run();
    return this.#decode();
  }

  /**
   * Runs `KVM_RUN` on this vCPU's own native thread and resolves with the
   * exit, so that the event loop keeps turning while the guest computes.
   * One run at a time per vCPU; other calls on it throw `EBUSY` meanwhile.
   */
  async runAsync(): Promise<VmExit> {
    await this.native.runAsync();
    return this.#decode();
  }

  /**
   * Runs until the guest halts, passing I/O, MMIO and debug exits to the
   * handlers (`intr` exits just run again). Any other exit, or one with no
   * handler, throws a {@link GuestError} whose message names the exit, the
   * mode, rip, the control registers and the code at rip, disassembled.
   * Returns the number of exits handled.
   */
  runUntilHalt(handlers: RunHandlers = {}): number {
    for (let count = 0; ; count++) {
      const exit = this.run();
      switch (exit.reason) {
        case 'hlt':
          return count;
        case 'intr':
          continue;
        case 'io':
        case 'mmio':
        case 'debug': {
          const handler = handlers[exit.reason] as ((e: VmExit) => void) | undefined;
          if (!handler) throw guestError(this, exit, `unhandled ${exit.reason} exit`);
          handler(exit);
          continue;
        }
        default:
          throw guestError(this, exit);
      }
    }
  }

  /**
   * Makes a {@link Vcpu.runAsync} in flight return promptly with an `intr`
   * exit (sets `immediate_exit` and signals the vCPU thread). Returns false
   * when nothing was running.
   */
  kick(): boolean {
    return this.native.kick();
  }

  /** `KVM_GET_REGS`. */
  getRegs(): Regs {
    return this.native.getRegs();
  }

  /** `KVM_SET_REGS`; registers left out keep their values. */
  setRegs(regs: RegsInput): void {
    this.native.setRegs(regs);
  }

  /** `KVM_GET_SREGS`. */
  getSregs(): Sregs {
    return this.native.getSregs();
  }

  /** `KVM_SET_SREGS`; fields left out keep their values. */
  setSregs(sregs: SregsInput): void {
    this.native.setSregs(sregs);
  }

  /** Opens the vCPU's binary statistics (`KVM_GET_STATS_FD`): `exits`, `io_exits`, `mmio_exits`, `pf_fixed`, `pf_taken`... */
  openStats(): KvmStats {
    return new KvmStats(this.native.getStatsFd());
  }

  /** `KVM_SET_CPUID2`: the CPUID the guest sees, e.g. from {@link Kvm.getSupportedCpuid}. */
  setCpuid(entries: readonly Readonly<CpuidEntry>[]): void {
    this.native.setCpuid([...entries]);
  }

  /**
   * `KVM_TRANSLATE`: walks the guest's page tables for a linear address
   * (segment base + offset) as the vCPU is set up now.
   */
  translate(linearAddress: bigint | number): Translation {
    return this.native.translate(linearAddress);
  }

  /**
   * `KVM_SET_GUEST_DEBUG`: single-stepping, hardware and software breakpoints, each
   * ending the run with a `debug` exit whose `pc` is the instruction
   * pointer. `null` turns debugging off.
   */
  setGuestDebug(options: GuestDebugOptions | null): void {
    if (options === null) {
      this.native.setGuestDebug(0, []);
      return;
    }
    const bps = options.breakpoints ?? [];
    if (bps.length > 4) throw argError(`x86 has 4 hardware breakpoints, got ${bps.length}`);
    let control = DBG.ENABLE;
    if (options.singleStep) control |= DBG.SINGLESTEP;
    if (options.softwareBreakpoints) control |= DBG.USE_SW_BP;
    const regs = [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
    if (bps.length > 0) {
      control |= DBG.USE_HW_BP;
      // DR7: local enable per breakpoint; R/W and LEN 0 mean "on execution".
      bps.forEach((a, i) => {
        regs[i] = BigInt(a);
        regs[7] = (regs[7] ?? 0n) | (1n << BigInt(i * 2));
      });
    }
    this.native.setGuestDebug(control, regs);
  }

  /**
   * Closes the vCPU: a run in flight is kicked and its promise rejects with
   * `EBADF`; the kvm_run area is unmapped. Idempotent.
   */
  close(): void {
    this.native.close();
    this.#view = undefined;
    this.#bytes = undefined;
  }

  /** Same as {@link Vcpu.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #decode(): VmExit {
    if (this.#view === undefined || this.#bytes === undefined) {
      const buffer = this.native.runBuffer;
      this.#view = new DataView(buffer);
      this.#bytes = new Uint8Array(buffer);
    }
    return decodeExit(this.#view, this.#bytes);
  }
}
