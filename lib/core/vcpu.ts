import type { MsrEntry, NativeVcpu } from './binding';
import { decodeDebugRegs, decodeEvents, decodeFpu, decodeMpState, decodeXcrs, encodeDebugRegs, encodeEvents, encodeFpu, encodeMpState, encodeXcrs, type DebugRegs, type Fpu, type MpState, type VcpuEvents, type VcpuEventsInput, type Xcrs } from './state';
import { RunArea, type DebugExit, type IoExit, type MmioExit, type VmExit } from './exits';
import { KvmStats } from './stats';
import { decodeSregs, encodeSregs, regsFromWords, regsToWords, SREGS_SIZE, validateRegs, validateSregs, type Regs, type RegsInput, type Sregs, type SregsInput } from './regs';
import { validateCpuid, type CpuidEntry } from './cpuid';
import { KvmError } from './errors';
import { constants as osConstants } from 'node:os';
import { outOfRange, own, validateInteger, validateInstance, validateArray, validateBoolean, validateFunction, validateObject, validateOptions, validateU64, validateUint8Array } from './validate';
import { binding } from './binding';
import { ExitReason } from './constants';
import type { Vm } from './vm';
import { drainCoalesced, harvestDirtyRing, harvestDirtyRingInto, type CoalescedCallback, type CoalescedWrite, type DirtyGfn } from './rings';

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

const { runVcpu } = binding;
const C = binding.constants as Record<string, number>;
const RUN = binding.runLayout as Record<string, number>;
const SYNC_REGS = RUN.syncRegs!;
const SYNC_SREGS = RUN.syncSregs!;
const SYNC_EVENTS = RUN.syncEvents!;
const DIRTY_REGS = RUN.kvmDirtyRegs!;
// KVM_SYNC_X86_REGS, _SREGS, _EVENTS: kvm_run.kvm_dirty_regs bits.
const SYNC_X86_REGS = 1n;
const SYNC_X86_SREGS = 2n;
const SYNC_X86_EVENTS = 4n;
const EVENTS_SIZE = (binding.stateLayouts as Record<string, { size: number }>).events!.size;
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
  #area: RunArea | undefined;
  #words: BigUint64Array | undefined;
  readonly #slot: number;

  /** @internal */
  constructor(native: NativeVcpu, vm: Vm) {
    this.native = native;
    this.#slot = native.runSlot;
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
   * fast path for tight exit loops. It ends with an `intr` exit when
   * `timeoutMs` passes, when another thread calls {@link kickVcpu} with
   * this vCPU's {@link Vcpu.kickHandle}, or on a signal to this thread;
   * run again to go on. A worker that is terminated, a process that exits,
   * or a script that a `vm` timeout terminates ends the run within about
   * 200 ms.
   */
  run(options?: RunOptions): VmExit {
    const timeoutMs = options === undefined ? undefined : runTimeout(validateOptions(options, 'options', ['timeoutMs']));
    const reason = timeoutMs === undefined ? runVcpu(this.#slot) : runVcpu(this.#slot, timeoutMs);
    return bareExit(reason) ?? (this.#area ?? this.#mapRun()).decode(reason);
  }

  /**
   * Runs the guest on this vCPU's own native thread until the next exit and
   * resolves with it, keeping the event loop free while the guest
   * computes. With CPUs to spare the caller waits a few microseconds for
   * the exit, so quick exits cost no thread wake-ups; a chain of awaited
   * runs may hold a turn of the event loop for
   * {@link ASYNC_TURN_BUDGET_MS}, then the next waits for the next turn.
   * Keep a vCPU on one kind of run: moving it between threads (`run()`
   * here, `runAsync()` there) costs an RCU grace period per move on
   * kernels before 6.10. One run at a time per vCPU; other calls on it
   * throw `EBUSY` meanwhile. {@link Vcpu.kick}, `timeoutMs` and
   * aborting `signal` each end the run with an `intr` exit (a signal
   * aborted already: no run, `intr` at once).
   */
  runAsync(options: RunAsyncOptions = {}): Promise<VmExit> {
    try {
      return this.#runAsync(options);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #runAsync(options: RunAsyncOptions): Promise<VmExit> {
    const o = validateOptions(options, 'options', ['timeoutMs', 'signal']);
    const timeoutMs = runTimeout(o);
    const signal = abortSignal(o);
    const native = this.native;
    const decode = this.#decoder();
    const handle = native.kickHandle;
    if (signal?.aborted) {
      if (native.fd < 0 || native.running) native.runAsync(); // the same EBADF/EBUSY as a run
      return Promise.resolve({ reason: 'intr' });
    }
    const deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
    // The vCPU thread runs the guest; this thread waits for the exit a few
    // microseconds (spinning, when there are CPUs to spare) before it
    // lets the event loop go on. Once the turn's budget is spent, the next
    // run waits for the next turn, parked (busy, a kick is kept).
    const step = (parked: boolean): VmExit | Promise<VmExit> => {
      const left = deadline - performance.now();
      if (parked && (signal?.aborted || left <= 0)) {
        native.unpark();
        return { reason: 'intr' };
      }
      if (turnBudgetMs() <= 0) {
        if (!parked) native.park();
        return new Promise<void>((resolve) => setImmediate(resolve)).then(() => step(true));
      }
      const spinUs = Math.max(0, Math.floor(Math.min(SPIN_US, left * 1000)));
      const r = native.runAsync(spinUs, parked);
      return typeof r === 'number' ? decode() : onThread(r, decode, handle, deadline, signal);
    };
    return Promise.resolve(step(false));
  }

  /**
   * A number that identifies this vCPU across threads: pass it to a worker
   * (or from one) and {@link kickVcpu} there ends this vCPU's run in
   * flight, sync or async.
   */
  get kickHandle(): bigint {
    return this.native.kickHandle;
  }

  /**
   * Makes a {@link Vcpu.runAsync} in flight return promptly with an `intr`
   * exit (sets `immediate_exit` and signals the vCPU thread). When its exit
   * came already and is on its way to JavaScript, the next run ends at once
   * with `intr` instead, so a kick is never lost. Returns false when nothing
   * was running.
   */
  kick(): boolean {
    return this.native.kick();
  }

  /** `KVM_GET_REGS`. */
  getRegs(): Regs {
    const words = regsScratch();
    this.native.getRegs(words);
    return regsFromWords(words);
  }

  /**
   * `KVM_SET_REGS`; registers left out keep their values (read first with
   * `KVM_GET_REGS`, unless all 18 are given).
   */
  setRegs(regs: RegsInput): void {
    const values = validateRegs(regs);
    const words = regsScratch();
    if (values.includes(undefined)) this.native.getRegs(words);
    regsToWords(values, words);
    this.native.setRegs(words);
  }

  /** `KVM_GET_SREGS`. */
  getSregs(): Sregs {
    return decodeSregs(this.native.getState('sregs', sregsScratch()));
  }

  /** `KVM_SET_SREGS`; fields left out keep their values (read first with `KVM_GET_SREGS`). */
  setSregs(sregs: SregsInput): void {
    const valid = validateSregs(sregs);
    const bytes = sregsScratch();
    const mask = (sregsMask ??= new Uint8Array(SREGS_SIZE)).fill(0);
    encodeSregs(bytes, valid, 0, mask);
    this.native.setState('sregs', bytes, mask); // one call: the addon reads the rest first
  }

  /** `KVM_GET_CPUID2`: the CPUID entries this vCPU was given. */
  getCpuid(): CpuidEntry[] {
    return this.native.getCpuid();
  }

  /**
   * `KVM_GET_MSRS`: the values of the model-specific registers `indices`.
   * The kernel stops at the first one it cannot read, so the result holds
   * the entries before it (compare the lengths).
   */
  getMsrs(indices: readonly number[]): MsrEntry[] {
    return this.native.getMsrs(validateArray(indices, 'indices', 4096).map((x, i) => validateInteger(x, `indices[${i}]`, 0, 0xffffffff)));
  }

  /**
   * `KVM_SET_MSRS`: returns how many entries were set; the kernel stops at
   * the first it refuses, so fewer than given means that one failed.
   */
  setMsrs(entries: readonly MsrEntry[]): number {
    const list = validateArray(entries, 'entries', 4096).map((e, i) => {
      const o = validateObject(e, `entries[${i}]`, ['index', 'value']);
      return { index: validateInteger(o.index, `entries[${i}].index`, 0, 0xffffffff), value: validateU64(o.value, `entries[${i}].value`) };
    });
    return this.native.setMsrs(list);
  }

  /** `KVM_GET_FPU`: the x87 and SSE registers. */
  getFpu(): Fpu {
    return decodeFpu(this.native.getState('fpu'));
  }

  /** `KVM_SET_FPU`; fields left out keep their values. */
  setFpu(fpu: Partial<Fpu>): void {
    const b = this.native.getState('fpu');
    encodeFpu(b, fpu);
    this.native.setState('fpu', b);
  }

  /** `KVM_GET_DEBUGREGS`. */
  getDebugRegs(): DebugRegs {
    return decodeDebugRegs(this.native.getState('debugregs'));
  }

  /** `KVM_SET_DEBUGREGS`; fields left out keep their values. */
  setDebugRegs(regs: Partial<DebugRegs>): void {
    const b = this.native.getState('debugregs');
    encodeDebugRegs(b, regs);
    this.native.setState('debugregs', b);
  }

  /** `KVM_GET_XCRS`: the extended control registers (XCR0 selects the XSAVE features). */
  getXcrs(): Xcrs {
    return decodeXcrs(this.native.getState('xcrs'));
  }

  /** `KVM_SET_XCRS`. */
  setXcrs(xcrs: Xcrs): void {
    const b = this.native.getState('xcrs');
    encodeXcrs(b, xcrs);
    this.native.setState('xcrs', b);
  }

  /** `KVM_GET_MP_STATE`: `'runnable'`, `'halted'`, `'uninitialized'`... (a number for states this library does not name). */
  getMpState(): MpState | number {
    return decodeMpState(this.native.getState('mpState'));
  }

  /** `KVM_SET_MP_STATE`. */
  setMpState(state: MpState | number): void {
    const b = this.native.getState('mpState');
    encodeMpState(b, state);
    this.native.setState('mpState', b);
  }

  /** `KVM_GET_VCPU_EVENTS`: pending and injected exceptions, interrupts, NMIs and SMIs. */
  getVcpuEvents(): VcpuEvents {
    return decodeEvents(this.native.getState('events'));
  }

  /**
   * `KVM_SET_VCPU_EVENTS`; fields left out keep their values. Which parts
   * the kernel applies is governed by `flags` (`KVM_VCPUEVENT_VALID_*`).
   */
  setVcpuEvents(events: VcpuEventsInput): void {
    const b = this.native.getState('events');
    encodeEvents(b, events);
    this.native.setState('events', b);
  }

  /** `KVM_GET_LAPIC`: the local APIC's 1 KiB register page, as the APIC lays it out (ID at 0x20, ...). */
  getLapic(): Uint8Array {
    return this.native.getState('lapic');
  }

  /** `KVM_SET_LAPIC` from a register page of {@link Vcpu.getLapic}'s size. Needs the in-kernel irqchip. */
  setLapic(page: Uint8Array): void {
    this.native.setState('lapic', validateUint8Array(page, 'page'));
  }

  /** `KVM_GET_XSAVE` (or `KVM_GET_XSAVE2` when the area is larger than 4 KiB): the XSAVE area. */
  getXsave(): Uint8Array {
    return this.native.getState('xsave');
  }

  /** `KVM_SET_XSAVE` from an area of {@link Vcpu.getXsave}'s size. */
  setXsave(area: Uint8Array): void {
    this.native.setState('xsave', validateUint8Array(area, 'area'));
  }

  /** `KVM_GET_NESTED_STATE`: the state of a nested guest, or null where this KVM has none (`KVM_CAP_NESTED_STATE` 0). */
  getNestedState(): Uint8Array | null {
    return this.native.getNestedState();
  }

  /** `KVM_SET_NESTED_STATE` from bytes {@link Vcpu.getNestedState} returned. */
  setNestedState(state: Uint8Array): void {
    this.native.setNestedState(validateUint8Array(state, 'state'));
  }

  /** `KVM_GET_TSC_KHZ`: the guest's TSC frequency. */
  getTscKhz(): number {
    return this.native.getTscKhz();
  }

  /** `KVM_SET_TSC_KHZ`. */
  setTscKhz(khz: number): void {
    this.native.setTscKhz(validateInteger(khz, 'khz', 1, 0xffffffff));
  }

  /** `KVM_INTERRUPT`: queues external interrupt `vector` (only without the in-kernel irqchip). */
  interrupt(vector: number): void {
    this.native.interrupt(validateInteger(vector, 'vector', 0, 255));
  }

  /** `KVM_NMI`: queues a non-maskable interrupt. */
  nmi(): void {
    this.native.nmi();
  }

  /** `KVM_SMI`: queues a system-management interrupt (where KVM has SMM). */
  smi(): void {
    this.native.smi();
  }

  /** `KVM_ENABLE_CAP` on the vCPU; returns the ioctl's result. */
  enableCap(cap: number, args: readonly (bigint | number)[] = []): number {
    validateInteger(cap, 'cap', 0, 0xffffffff);
    return this.native.enableCap(cap, validateArray(args, 'args', 4).map((a, i) => validateU64(a, `args[${i}]`)));
  }

  /**
   * Turns `sync_regs` on or off: at every exit KVM writes the chosen state
   * into the shared `kvm_run` area, where {@link Vcpu.syncedRegs} and
   * friends read it without an ioctl; `setSynced*` writes go back the same
   * way at the next run. Needs `KVM_CAP_SYNC_REGS`.
   */
  syncRegs(which: { regs?: boolean; sregs?: boolean; events?: boolean }): void {
    const o = validateObject(which, 'which', ['regs', 'sregs', 'events']);
    let mask = 0;
    if (own(o, 'regs') !== undefined && validateBoolean(o.regs, 'which.regs')) mask |= 1;
    if (own(o, 'sregs') !== undefined && validateBoolean(o.sregs, 'which.sregs')) mask |= 2;
    if (own(o, 'events') !== undefined && validateBoolean(o.events, 'which.events')) mask |= 4;
    this.native.setSyncRegs(mask);
  }

  /** The registers KVM wrote into `kvm_run` at the last exit (with {@link Vcpu.syncRegs} `regs`). */
  syncedRegs(): Regs {
    return regsFromWords(this.#syncWords('kvm_run.s.regs'), SYNC_REGS / 8);
  }

  /** Writes registers into `kvm_run` for the next run to load; fields left out keep the synced values. */
  setSyncedRegs(regs: RegsInput): void {
    const values = validateRegs(regs);
    const words = this.#syncWords('kvm_run.s.regs');
    regsToWords(values, words, SYNC_REGS / 8);
    this.#markSynced(SYNC_X86_REGS);
  }

  // kvm_run as 64-bit words, for the synced registers: read and written in
  // place, with no N-API objects (which cost more than the exit saved).
  #syncWords(what: string): BigUint64Array {
    if (this.native.fd < 0) throw new KvmError(osConstants.errno.EBADF, what, 'vCPU is closed');
    if (this.native.running) throw new KvmError(osConstants.errno.EBUSY, what, 'the vCPU is running (runAsync); await it or kick() it first');
    return (this.#words ??= new BigUint64Array(this.native.runBuffer));
  }

  // Marks state written into kvm_run for the next KVM_RUN to load (kvm_dirty_regs).
  #markSynced(bit: bigint): void {
    const words = this.#words!;
    words[DIRTY_REGS / 8] = words[DIRTY_REGS / 8]! | bit;
  }

  #syncBytes(what: string): Uint8Array {
    const words = this.#syncWords(what);
    return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  }

  /** The special registers KVM wrote into `kvm_run` at the last exit (with {@link Vcpu.syncRegs} `sregs`). */
  syncedSregs(): Sregs {
    return decodeSregs(this.#syncBytes('kvm_run.s.regs'), SYNC_SREGS);
  }

  /** Writes special registers into `kvm_run` for the next run to load; fields left out keep the synced values. */
  setSyncedSregs(sregs: SregsInput): void {
    const valid = validateSregs(sregs);
    encodeSregs(this.#syncBytes('kvm_run.s.regs'), valid, SYNC_SREGS);
    this.#markSynced(SYNC_X86_SREGS);
  }

  /** The vCPU events KVM wrote into `kvm_run` at the last exit (with {@link Vcpu.syncRegs} `events`). */
  syncedVcpuEvents(): VcpuEvents {
    return decodeEvents(this.#syncBytes('kvm_run.s.regs').subarray(SYNC_EVENTS, SYNC_EVENTS + EVENTS_SIZE));
  }

  /** Writes vCPU events into `kvm_run` for the next run to load; fields left out keep the synced values. */
  setSyncedVcpuEvents(events: VcpuEventsInput): void {
    const run = this.#syncBytes('kvm_run.s.regs');
    // On a copy: a bad field must leave kvm_run as it was.
    const b = run.slice(SYNC_EVENTS, SYNC_EVENTS + EVENTS_SIZE);
    encodeEvents(b, events);
    run.set(b, SYNC_EVENTS);
    this.#markSynced(SYNC_X86_EVENTS);
  }

  /** Opens the vCPU's binary statistics (`KVM_GET_STATS_FD`): `exits`, `io_exits`, `mmio_exits`, `pf_fixed`, `pf_taken`... */
  openStats(): KvmStats {
    return new KvmStats(this.native.getStatsFd());
  }

  /** `KVM_SET_CPUID2`: the CPUID the guest sees, e.g. from {@link Kvm.getSupportedCpuid}. */
  setCpuid(entries: readonly Readonly<CpuidEntry>[]): void {
    this.native.setCpuid(validateCpuid(entries));
  }

  /**
   * `KVM_TRANSLATE`: walks the guest's page tables for a linear address
   * (segment base + offset) as the vCPU is set up now.
   */
  translate(linearAddress: bigint | number): Translation {
    return this.native.translate(validateU64(linearAddress, 'linearAddress'));
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
    const o = validateObject(options, 'options', ['singleStep', 'breakpoints', 'softwareBreakpoints']);
    // x86 has 4 hardware breakpoints (DR0-DR3).
    const bps = own(o, 'breakpoints') === undefined ? [] : validateArray(o.breakpoints, 'options.breakpoints', 4).map((a, i) => validateU64(a, `options.breakpoints[${i}]`));
    let control = DBG.ENABLE;
    if (own(o, 'singleStep') !== undefined && validateBoolean(o.singleStep, 'options.singleStep')) control |= DBG.SINGLESTEP;
    if (own(o, 'softwareBreakpoints') !== undefined && validateBoolean(o.softwareBreakpoints, 'options.softwareBreakpoints')) control |= DBG.USE_SW_BP;
    const regs = [0n, 0n, 0n, 0n, 0n, 0n, 0n, 0n];
    if (bps.length > 0) {
      control |= DBG.USE_HW_BP;
      // DR7: local enable per breakpoint; R/W and LEN 0 mean "on execution".
      bps.forEach((a, i) => {
        regs[i] = a;
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
    this.#area = undefined;
    this.#words = undefined;
  }

  /** Same as {@link Vcpu.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // --- rings (lib/core/rings.ts) ---

  /**
   * Reads and consumes the writes queued in the coalesced MMIO/PIO ring
   * ({@link Vm.addCoalescedZone}), oldest first. The ring is the VM's,
   * seen through every vCPU: drain it from one place, after a run and
   * before handling the run's exit. Without a callback, returns them as
   * objects; with one, calls it per write (its `data` is a reused buffer:
   * no object per write) and returns the count.
   */
  drainCoalesced(): CoalescedWrite[];
  drainCoalesced(callback: CoalescedCallback): number;
  drainCoalesced(callback?: CoalescedCallback): CoalescedWrite[] | number {
    return drainCoalesced(this.native, callback);
  }

  /**
   * The pages this vCPU dirtied since the last harvest, from its dirty ring
   * ({@link Vm.enableDirtyRing}), in the order it dirtied them (a page can
   * appear more than once). Each is marked harvested; call
   * {@link Vm.resetDirtyRings} to re-arm them. Safe during a `runAsync`.
   */
  harvestDirtyRing(): DirtyGfn[] {
    return harvestDirtyRing(this.native, this.vm.native);
  }

  /**
   * {@link Vcpu.harvestDirtyRing} into caller-owned arrays, allocating
   * nothing: fills up to `min(slots.length, offsets.length)` entries and
   * returns how many. Call again while it fills them all.
   */
  harvestDirtyRingInto(slots: Uint32Array, offsets: BigUint64Array): number {
    return harvestDirtyRingInto(this.native, this.vm.native, slots, offsets);
  }

  #decoder(): () => VmExit {
    const area = this.#area ?? this.#mapRun();
    return () => area.decode();
  }

  #mapRun(): RunArea {
    const buffer = this.native.runBuffer;
    return (this.#area = new RunArea(new DataView(buffer), new Uint8Array(buffer)));
  }
}

// One regs and one sregs buffer (and its mask) for every vCPU of this thread: each call
// fills, encodes or decodes its buffer at once and lets no user code run in
// between. A typed array over 64 bytes gets its own off-heap store: made
// per vCPU, the sregs one alone was ~3% of a VM's life's user time.
let regsWords: BigUint64Array | undefined;
let sregsBytes: Uint8Array | undefined;
const regsScratch = (): BigUint64Array => (regsWords ??= new BigUint64Array(18));
const sregsScratch = (): Uint8Array => (sregsBytes ??= new Uint8Array(SREGS_SIZE));
let sregsMask: Uint8Array | undefined;

// Exits that carry only their reason, decoded without kvm_run: a vCPU
// that just halts never pays for the buffer over it.
function bareExit(reason: number): VmExit | undefined {
  if (reason === ExitReason.HLT) return { reason: 'hlt' };
  if (reason === ExitReason.SHUTDOWN) return { reason: 'shutdown' };
  if (reason === ExitReason.INTR) return { reason: 'intr' };
  return undefined;
}

/** Options for {@link Vcpu.run} and {@link runUntilHalt}. */
export interface RunOptions {
  /** End the run (an `intr` exit) after this many milliseconds. */
  timeoutMs?: number;
}

/** Options for {@link Vcpu.runAsync} and {@link runUntilHaltAsync}. */
export interface RunAsyncOptions extends RunOptions {
  /** Aborting it ends the run in flight, like {@link Vcpu.kick}. */
  signal?: AbortSignal;
}

/**
 * Ends the run in flight of the vCPU whose {@link Vcpu.kickHandle} this is,
 * from any thread of the process (a sync `run()` in a worker included).
 * Returns false when it is not running or no longer exists.
 */
export function kickVcpu(handle: bigint): boolean {
  return binding.kickVcpu(validateU64(handle, 'handle'));
}

/**
 * Chooses the signal that interrupts `KVM_RUN`: `SIGUSR2` or a real-time
 * signal (default `SIGRTMIN+3`, 37 with glibc); call it before the first
 * run. node-kvm refuses to replace a handler that someone else installed on
 * it (`EBUSY`), so pick one that nothing else in the process uses.
 */
export function setKickSignal(signal: number): void {
  validateInteger(signal, 'signal', 1, SIGRTMAX);
  if (signal !== osConstants.signals.SIGUSR2 && signal < SIGRTMIN) {
    throw outOfRange('signal', `SIGUSR2 (${osConstants.signals.SIGUSR2}) or >= ${SIGRTMIN} && <= ${SIGRTMAX}`, signal);
  }
  binding.setKickSignal(signal);
}

/** The signal node-kvm uses to interrupt `KVM_RUN` now. */
export function kickSignal(): number {
  return binding.kickSignal();
}

// glibc's SIGRTMIN and SIGRTMAX on Linux (Node does not export them).
const SIGRTMIN = 34;
const SIGRTMAX = 64;

// The rest of a runAsync() on the vCPU thread. Its continuation holds the
// kvm_run view and the kick handle, not the vCPU (a closure in
// Vcpu.#runAsync would keep that whole scope): dropped and unreachable, a
// vCPU running on its thread can be collected (and closed) like any other.
function onThread(started: Promise<number>, decode: () => VmExit, handle: bigint, deadline: number, signal: AbortSignal | undefined): Promise<VmExit> {
  const kick = () => binding.kickVcpu(handle);
  const timer = deadline === Infinity ? undefined : setTimeout(kick, Math.max(0, Math.ceil(deadline - performance.now())));
  signal?.addEventListener('abort', kick, { once: true });
  const done = () => {
    if (timer !== undefined) clearTimeout(timer);
    signal?.removeEventListener('abort', kick);
  };
  return started.then(
    (r) => {
      done();
      return r < 0 ? { reason: 'intr' } : decode();
    },
    (e: unknown) => {
      done();
      throw e;
    },
  );
}

/**
 * How long a chain of awaited {@link Vcpu.runAsync} calls may keep one turn
 * of the event loop, in milliseconds; then the next run waits for the next
 * turn. A timer or I/O callback waits at most about this long behind an
 * exit-heavy guest.
 */
export const ASYNC_TURN_BUDGET_MS = 4;

// How long runAsync() spins for the vCPU thread's exit, in microseconds:
// an I/O exit takes ~8 µs on a host, and a thread wake-up costs ~50 µs on
// an idle one.
const SPIN_US = 50;

// This thread's current event-loop turn: started by the first runAsync()
// of the turn, ended by a setImmediate (the turn's check phase). Awaited
// runs that resolve at once chain on microtasks, which alone would hold
// the event loop forever.
let turnStart = -1;
function endTurn(): void {
  turnStart = -1;
}
function turnBudgetMs(): number {
  const now = performance.now();
  if (turnStart < 0) {
    turnStart = now;
    setImmediate(endTurn).unref();
  }
  return ASYNC_TURN_BUDGET_MS - (now - turnStart);
}

/** @internal The validated `timeoutMs` of run options. */
export function runTimeout(o: Record<string, unknown>): number | undefined {
  return own(o, 'timeoutMs') === undefined ? undefined : validateInteger(o.timeoutMs, 'options.timeoutMs', 0, 2 ** 31 - 1);
}

/** @internal The validated `signal` of run options. */
export function abortSignal(o: Record<string, unknown>): AbortSignal | undefined {
  return own(o, 'signal') === undefined ? undefined : validateInstance(o.signal, 'options.signal', AbortSignal);
}
