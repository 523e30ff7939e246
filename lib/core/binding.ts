// Loads the compiled addon and describes its (internal) shape.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestMemory } from './memory';

/** @internal */
export interface NativeKvm {
  readonly fd: number;
  apiVersion(): number;
  checkExtension(cap: number): number;
  vcpuMmapSize(): number;
  /** KVM_CREATE_VM: the new VM's slot (see {@link NativeVm}). */
  createVm(type: number): number;
  getSupportedCpuid(): import('./cpuid').CpuidEntry[];
  getMsrIndexList(features: boolean): number[];
  getMsrs(indices: number[]): MsrEntry[];
  close(): void;
}

/** @internal An eventfd (native/eventfd.cc). */
export interface NativeEventFd {
  readonly fd: number;
  readonly pending: number;
  write(value: bigint): void;
  read(): bigint | undefined;
  wait(): Promise<bigint>;
  close(): void;
}

/** @internal The vCPU state structs the addon reads and writes as bytes. */
export type StateKind = 'regs' | 'sregs' | 'fpu' | 'lapic' | 'xsave' | 'xcrs' | 'debugregs' | 'mpState' | 'events';

/** A model-specific register: its index and 64-bit value. */
export interface MsrEntry {
  index: number;
  value: bigint;
}

/** @internal A slot as the addon records it. */
export interface NativeSlot {
  id: number;
  flags: number;
  guestPhysAddr: bigint;
  size: number;
  userspaceAddr: bigint;
  offset: number;
  memory: GuestMemory; // the owner given to setUserMemoryRegion
}

/** @internal */
export interface Binding {
  Kvm: new (path: string) => NativeKvm;
  /** The guest memory functions: allocate and borrow give a slot, the others take one first (native/memory.cc). */
  memory: MemoryFunctions;
  setErrorFactory(f: (errno: number, syscall: string, detail: string) => Error): void;
  setMaxView(bytes: number): void;
  /** Clears the detach keys of the addon's external buffers (native/base/buffers.h). */
  clearDetachKeys(): void;
  setKickSignal(signo: number): void;
  kickSignal(): number;
  kickVcpu(handle: bigint): boolean;
  /** One sync run of the vCPU with this runSlot: the exit reason. */
  runVcpu(slot: number, timeoutMs?: number): number;
  /** The VM functions: each takes the VM's slot first (native/vm.cc). */
  vm: VmFunctions;
  /** The vCPU functions: each takes the vCPU's slot first (native/vcpu.cc). */
  vcpu: VcpuFunctions;
  runLayout: Record<string, number>;
  stateLayouts: Record<string, Record<string, number>>;
  constants: Record<string, number>;
  EventFd: new () => NativeEventFd;
  ringLayouts: Record<string, number>;
}

const root = join(__dirname, '..', '..'); // dist/core or lib/core -> the package
const sourceBuild = join(root, 'build/Release/node_kvm.node');

/**
 * Where the addon may be, in order: an override, what node-gyp-build picks
 * (a source build in build/, else the prebuild in prebuilds/ that matches
 * this platform, arch and libc), then the source build again for when
 * node-gyp-build is absent or its pick does not load.
 */
function candidates(): { paths: string[]; notes: string[] } {
  const paths: string[] = [];
  const notes: string[] = [];
  // A sanitizer build (`npm run test:asan`) or another build to test.
  if (process.env.NODE_KVM_ADDON) paths.push(process.env.NODE_KVM_ADDON);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
    paths.push(nodeGypBuild.path(root));
  } catch (e) {
    notes.push((e as Error).message.split('\n')[0] ?? String(e));
  }
  if (!paths.includes(sourceBuild)) paths.push(sourceBuild);
  return { paths, notes };
}

function load(): Binding {
  if (process.platform !== 'linux') {
    throw new Error(`node-kvm needs Linux (KVM is a Linux interface); this is ${process.platform}.`);
  }
  const { paths, notes } = candidates();
  const failures: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) continue;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      return require(p) as Binding;
    } catch (e) {
      if (p === process.env.NODE_KVM_ADDON) throw e; // asked for by name: no silent substitute
      // A prebuild for a newer glibc than this machine's fails here: try the next.
      failures.push(`${p}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const approve = 'npm install-scripts approve node-kvm && npm rebuild node-kvm';
  if (failures.length) {
    throw new Error(
      `node-kvm: the native addon did not load (${failures.join('; ')}). Build it for this machine: ` +
        `in a checkout run \`npm run build\`; in a project that depends on node-kvm, \`${approve} --build-from-source\`.`,
    );
  }
  throw new Error(
    `node-kvm: the native addon is not built (looked in ${join(root, 'build/Release')} and ` +
      `${join(root, 'prebuilds', `${process.platform}-${process.arch}`)}${notes.length ? `; ${notes.join('; ')}` : ''}). ` +
      'In a checkout run `npm run build`; in a project that depends on node-kvm, ' +
      `allow its build with \`${approve}\`.`,
  );
}

/** @internal */
export const binding: Binding = load();

// Node 24 tears an environment down by detaching its live external
// buffers, and aborts on one that markAsUntransferable() keyed
// (native/base/buffers.h); 'exit' comes first.
process.once('exit', () => binding.clearDetachKeys());

/** @internal What the addon's vm functions take after the slot, and give. */
interface VmFunctions {
  release(vm: number): void;
  fd(vm: number): number;
  checkExtension(vm: number, cap: number): number;
  setTssAddr(vm: number, addr: number | bigint): void;
  setIdentityMapAddr(vm: number, addr: number | bigint): void;
  setUserMemoryRegion(vm: number, slot: number, flags: number, gpa: number | bigint, size: number | bigint, memory?: number, offset?: number | bigint, owner?: GuestMemory, guestMemfd?: number, guestMemfdOffset?: number): bigint | undefined; // the slot's host address; undefined when deleted (size 0)
  createGuestMemfd(vm: number, size: number, flags: number): number;
  createVcpu(vm: number, id: number): number;
  slots(vm: number): NativeSlot[];
  createIrqchip(vm: number): void;
  getIrqchip(vm: number, chipId: number): Uint8Array;
  setIrqchip(vm: number, chipId: number, bytes: Uint8Array): void;
  irqLine(vm: number, irq: number, level: number): number;
  setGsiRouting(vm: number, entries: object[]): void;
  createPit2(vm: number, flags: number): void;
  getPit2(vm: number): Uint8Array;
  setPit2(vm: number, bytes: Uint8Array): void;
  getClock(vm: number): Uint8Array;
  setClock(vm: number, bytes: Uint8Array): void;
  setMsrFilter(vm: number, flags: number, ranges: { flags: number; base: number; nmsrs: number; bitmap: Uint8Array }[]): void;
  slotGeneration(vm: number): number;
  getDirtyLog(vm: number, slot: number, bitmap: Uint8Array): void;
  clearDirtyLog(vm: number, slot: number, firstPage: bigint | number, numPages: number, bitmap: Uint8Array): void;
  enableCap(vm: number, cap: number, args: (bigint | number)[]): number;
  getStatsFd(vm: number): number;
  close(vm: number): void;
  ioeventfd(vm: number, eventfd: NativeEventFd, address: bigint, length: number, flags: number, datamatch: bigint): void;
  irqfd(vm: number, eventfd: NativeEventFd, gsi: number, flags: number, resample?: NativeEventFd): void;
  coalescedZone(vm: number, register: boolean, address: bigint, size: number, pio: boolean): void;
  enableDirtyRing(vm: number, bytes: number, acqRel: boolean): void;
  resetDirtyRings(vm: number): number;
  dirtyRingBytes(vm: number): number;
}

/** @internal What the addon's vcpu functions take after the slot, and give. */
interface VcpuFunctions {
  release(slot: number): void;
  fd(slot: number): number;
  id(slot: number): number;
  running(slot: number): boolean;
  kickHandle(slot: number): bigint;
  runBuffer(slot: number): ArrayBuffer;
  harvestDirtyRing(slot: number, slots: Uint32Array, offsets: BigUint64Array): number;
  getState(slot: number, kind: StateKind, into?: Uint8Array): Uint8Array;
  setState(slot: number, kind: StateKind, bytes: Uint8Array, mask?: Uint8Array): void;
  getNestedState(slot: number): Uint8Array | null;
  setNestedState(slot: number, bytes: Uint8Array): void;
  getMsrs(slot: number, indices: number[]): MsrEntry[];
  setMsrs(slot: number, entries: MsrEntry[]): number;
  getCpuid(slot: number): import('./cpuid').CpuidEntry[];
  getTscKhz(slot: number): number;
  setTscKhz(slot: number, khz: number): void;
  interrupt(slot: number, irq: number): void;
  nmi(slot: number): void;
  smi(slot: number): void;
  enableCap(slot: number, cap: number, args: bigint[]): number;
  setSyncRegs(slot: number, mask: number): void;
  completePendingIo(slot: number): void;
  runAsync(slot: number, spinUs?: number, parked?: boolean): number | Promise<number>;
  park(slot: number): void;
  unpark(slot: number): void;
  kick(slot: number): boolean;
  getRegs(slot: number, into: BigUint64Array): void;
  setRegs(slot: number, words: BigUint64Array): void;
  setCpuid(slot: number, entries: import('./cpuid').CpuidEntry[]): void;
  translate(slot: number, address: bigint | number): import('./vcpu').Translation;
  setGuestDebug(slot: number, control: number, debugregs: bigint[]): void;
  getStatsFd(slot: number): number;
  close(slot: number): void;
}

const V = binding.vcpu;
// A vCPU the addon holds lives until its handle is garbage-collected
// (closing it only closes its fd and kvm_run).
const released = new FinalizationRegistry<number>((slot) => V.release(slot));

/**
 * @internal A vCPU of the addon, by its slot in the addon's table: the
 * addon makes no JavaScript object per vCPU (see native/vcpu.h).
 */
export class NativeVcpu {
  readonly #slot: number;

  constructor(slot: number) {
    this.#slot = slot;
    released.register(this, slot);
  }

  /** This vCPU's number for {@link Binding.runVcpu}. */
  get runSlot(): number {
    return this.#slot;
  }
  get fd(): number {
    return V.fd(this.#slot);
  }
  get id(): number {
    return V.id(this.#slot);
  }
  get running(): boolean {
    return V.running(this.#slot);
  }
  get kickHandle(): bigint {
    return V.kickHandle(this.#slot);
  }
  get runBuffer(): ArrayBuffer {
    return V.runBuffer(this.#slot);
  }
  harvestDirtyRing(slots: Uint32Array, offsets: BigUint64Array): number {
    return V.harvestDirtyRing(this.#slot, slots, offsets); // native/rings.cc
  }
  /** KVM_GET_<kind>, into `into` (exactly the struct's size) when given. */
  getState(kind: StateKind, into?: Uint8Array): Uint8Array {
    return V.getState(this.#slot, kind, into);
  }
  /** KVM_SET_<kind>; with `mask`, only the bytes it marks (0xff), the rest as KVM_GET_<kind> reads them. */
  setState(kind: StateKind, bytes: Uint8Array, mask?: Uint8Array): void {
    V.setState(this.#slot, kind, bytes, mask);
  }
  getNestedState(): Uint8Array | null {
    return V.getNestedState(this.#slot);
  }
  setNestedState(bytes: Uint8Array): void {
    V.setNestedState(this.#slot, bytes);
  }
  getMsrs(indices: number[]): MsrEntry[] {
    return V.getMsrs(this.#slot, indices);
  }
  setMsrs(entries: MsrEntry[]): number {
    return V.setMsrs(this.#slot, entries);
  }
  getCpuid(): import('./cpuid').CpuidEntry[] {
    return V.getCpuid(this.#slot);
  }
  getTscKhz(): number {
    return V.getTscKhz(this.#slot);
  }
  setTscKhz(khz: number): void {
    V.setTscKhz(this.#slot, khz);
  }
  interrupt(irq: number): void {
    V.interrupt(this.#slot, irq);
  }
  nmi(): void {
    V.nmi(this.#slot);
  }
  smi(): void {
    V.smi(this.#slot);
  }
  enableCap(cap: number, args: bigint[]): number {
    return V.enableCap(this.#slot, cap, args);
  }
  setSyncRegs(mask: number): void {
    V.setSyncRegs(this.#slot, mask);
  }
  completePendingIo(): void {
    V.completePendingIo(this.#slot);
  }
  /** The exit reason when it came within spinUs, else a Promise of it (-1: collected). */
  runAsync(spinUs?: number, parked?: boolean): number | Promise<number> {
    return V.runAsync(this.#slot, spinUs, parked);
  }
  park(): void {
    V.park(this.#slot);
  }
  unpark(): void {
    V.unpark(this.#slot);
  }
  kick(): boolean {
    return V.kick(this.#slot);
  }
  /** KVM_GET_REGS into 18 words, in kvm_regs' order. */
  getRegs(into: BigUint64Array): void {
    V.getRegs(this.#slot, into);
  }
  setRegs(words: BigUint64Array): void {
    V.setRegs(this.#slot, words);
  }
  setCpuid(entries: import('./cpuid').CpuidEntry[]): void {
    V.setCpuid(this.#slot, entries);
  }
  translate(address: bigint | number): import('./vcpu').Translation {
    return V.translate(this.#slot, address);
  }
  setGuestDebug(control: number, debugregs: bigint[]): void {
    V.setGuestDebug(this.#slot, control, debugregs);
  }
  getStatsFd(): number {
    return V.getStatsFd(this.#slot);
  }
  close(): void {
    V.close(this.#slot);
  }
}

const M = binding.vm;
// A VM the addon holds lives until its handle is garbage-collected
// (closing it only closes its fd, its vCPUs and its slots).
const releasedVms = new FinalizationRegistry<number>((slot) => M.release(slot));

/**
 * @internal A VM of the addon, by its slot in the addon's table: the addon
 * makes no JavaScript object per VM (see native/base/table.h).
 */
export class NativeVm {
  readonly #vm: number;

  constructor(vm: number) {
    this.#vm = vm;
    releasedVms.register(this, vm);
  }

  get fd(): number {
    return M.fd(this.#vm);
  }
  checkExtension(cap: number): number {
    return M.checkExtension(this.#vm, cap);
  }
  setTssAddr(addr: number | bigint): void {
    M.setTssAddr(this.#vm, addr);
  }
  setIdentityMapAddr(addr: number | bigint): void {
    M.setIdentityMapAddr(this.#vm, addr);
  }
  setUserMemoryRegion(slot: number, flags: number, gpa: number | bigint, size: number | bigint, memory?: number, offset?: number | bigint, owner?: GuestMemory, guestMemfd?: number, guestMemfdOffset?: number): bigint | undefined {
    return M.setUserMemoryRegion(this.#vm, slot, flags, gpa, size, memory, offset, owner, guestMemfd, guestMemfdOffset); // the slot's host address; undefined when deleted (size 0)
  }
  createGuestMemfd(size: number, flags: number): number {
    return M.createGuestMemfd(this.#vm, size, flags);
  }
  /** KVM_CREATE_VCPU: the new vCPU's slot (see {@link NativeVcpu}). */
  createVcpu(id: number): number {
    return M.createVcpu(this.#vm, id);
  }
  slots(): NativeSlot[] {
    return M.slots(this.#vm);
  }
  createIrqchip(): void {
    M.createIrqchip(this.#vm);
  }
  getIrqchip(chipId: number): Uint8Array {
    return M.getIrqchip(this.#vm, chipId);
  }
  setIrqchip(chipId: number, bytes: Uint8Array): void {
    M.setIrqchip(this.#vm, chipId, bytes);
  }
  irqLine(irq: number, level: number): number {
    return M.irqLine(this.#vm, irq, level);
  }
  setGsiRouting(entries: object[]): void {
    M.setGsiRouting(this.#vm, entries);
  }
  createPit2(flags: number): void {
    M.createPit2(this.#vm, flags);
  }
  getPit2(): Uint8Array {
    return M.getPit2(this.#vm);
  }
  setPit2(bytes: Uint8Array): void {
    M.setPit2(this.#vm, bytes);
  }
  getClock(): Uint8Array {
    return M.getClock(this.#vm);
  }
  setClock(bytes: Uint8Array): void {
    M.setClock(this.#vm, bytes);
  }
  setMsrFilter(flags: number, ranges: { flags: number; base: number; nmsrs: number; bitmap: Uint8Array }[]): void {
    M.setMsrFilter(this.#vm, flags, ranges);
  }
  get slotGeneration(): number {
    return M.slotGeneration(this.#vm);
  }
  getDirtyLog(slot: number, bitmap: Uint8Array): void {
    M.getDirtyLog(this.#vm, slot, bitmap);
  }
  clearDirtyLog(slot: number, firstPage: bigint | number, numPages: number, bitmap: Uint8Array): void {
    M.clearDirtyLog(this.#vm, slot, firstPage, numPages, bitmap);
  }
  enableCap(cap: number, args: (bigint | number)[]): number {
    return M.enableCap(this.#vm, cap, args);
  }
  getStatsFd(): number {
    return M.getStatsFd(this.#vm);
  }
  close(): void {
    M.close(this.#vm);
  }
  ioeventfd(eventfd: NativeEventFd, address: bigint, length: number, flags: number, datamatch: bigint): void {
    M.ioeventfd(this.#vm, eventfd, address, length, flags, datamatch);
  }
  irqfd(eventfd: NativeEventFd, gsi: number, flags: number, resample?: NativeEventFd): void {
    M.irqfd(this.#vm, eventfd, gsi, flags, resample);
  }
  coalescedZone(register: boolean, address: bigint, size: number, pio: boolean): void {
    M.coalescedZone(this.#vm, register, address, size, pio);
  }
  enableDirtyRing(bytes: number, acqRel: boolean): void {
    M.enableDirtyRing(this.#vm, bytes, acqRel);
  }
  resetDirtyRings(): number {
    return M.resetDirtyRings(this.#vm);
  }
  get dirtyRingBytes(): number {
    return M.dirtyRingBytes(this.#vm);
  }
}

/** @internal What the addon's memory functions take and give. */
interface MemoryFunctions {
  allocate(size: number, thp: 2 | 1 | 0 | -1): number;
  borrow(kind: 'arraybuffer' | 'shared' | 'wasm' | 'wasm-shared', source: object, view: Uint8Array): number;
  release(memory: number): void;
  buffer(memory: number): ArrayBuffer | SharedArrayBuffer | undefined;
  size(memory: number): number;
  address(memory: number): bigint;
  slotCount(memory: number): number;
  kind(memory: number): 'mapped' | 'arraybuffer' | 'shared' | 'wasm';
  closed(memory: number): boolean;
  markable(memory: number): boolean;
  view(memory: number, offset: number, length: number): ArrayBuffer;
  close(memory: number): void;
}

const G = binding.memory;
// Memory the addon holds lives until its handle is garbage-collected; a
// slot that maps it holds its GuestMemory, and so this handle.
const releasedMemory = new FinalizationRegistry<number>((slot) => G.release(slot));

/**
 * @internal Guest memory of the addon, by its slot in the addon's table:
 * the addon makes no JavaScript object per memory (native/base/table.h).
 */
export class NativeMemory {
  readonly #slot: number;

  private constructor(slot: number) {
    this.#slot = slot;
    releasedMemory.register(this, slot);
  }

  /** Maps `size` bytes (thp: 1 ask for transparent huge pages, 0 refuse them, -1 the default, 2 hugetlbfs). */
  static allocate(size: number, thp: 2 | 1 | 0 | -1): NativeMemory {
    return new NativeMemory(G.allocate(size, thp));
  }
  /** A caller's page-aligned buffer; `view` is a Uint8Array over all of it. */
  static borrow(kind: 'arraybuffer' | 'shared' | 'wasm' | 'wasm-shared', source: object, view: Uint8Array): NativeMemory {
    return new NativeMemory(G.borrow(kind, source, view));
  }

  /** This memory's number for the addon's functions (setUserMemoryRegion). */
  get slot(): number {
    return this.#slot;
  }
  get buffer(): ArrayBuffer | SharedArrayBuffer | undefined {
    return G.buffer(this.#slot);
  }
  get size(): number {
    return G.size(this.#slot);
  }
  get address(): bigint {
    return G.address(this.#slot);
  }
  get slotCount(): number {
    return G.slotCount(this.#slot);
  }
  get kind(): 'mapped' | 'arraybuffer' | 'shared' | 'wasm' {
    return G.kind(this.#slot);
  }
  get closed(): boolean {
    return G.closed(this.#slot);
  }
  get markable(): boolean {
    return G.markable(this.#slot);
  }
  view(offset: number, length: number): ArrayBuffer {
    return G.view(this.#slot, offset, length);
  }
  close(): void {
    G.close(this.#slot);
  }
}
