import type { NativeVcpu } from './binding';
import { decodeExit, type VmExit } from './exits';
import type { Regs, RegsInput, Sregs, SregsInput } from './regs';
import type { Vm } from './vm';

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
