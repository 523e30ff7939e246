// Boots a stock Linux kernel (a bzImage, by default the machine's own
// /boot/vmlinuz-*) to a busybox /init, with the serial console in the
// terminal: node-kvm's public API plus a few devices in TypeScript.
//
//   npm run example:linux [-- --kernel PATH --initrd PATH --append "..." --memory MB
//                             --run "CMD" --shell --json --timeout SEC --sandbox|--host]
//
// KVM does the CPU, memory, interrupt controllers and timer; this file
// does the rest: guest RAM with an e820 map, ACPI tables, the bzImage and
// initramfs, long mode at startup_64, and the exit loop that serves the
// UART, CMOS, keyboard-controller reset and ACPI power-off. On a host whose
// KVM is not hardware-assisted (PVM emulates all CPL0 code, far too slow
// for a kernel) it re-runs itself in the node-kvm sandbox.
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { parseArgs } from 'node:util';
import { GuestMemory, Kvm, Vm, probeKvm, setupMode, type CpuidEntry, type Snapshot, type Vcpu, type VmExit } from 'node-kvm';
import { parseBzImage, placeLinux, type LinuxLayout } from './bzimage';
import { ACPI_PORTS, writeAcpiTables } from './acpi';
import { AcpiPm, Cmos, KeyboardController, PortBus, Uart16550, type UartState } from './devices';
import { INIT_LINE, buildInitramfs } from './initramfs';

/** The command line used when none is given. */
export const DEFAULT_APPEND = 'console=ttyS0 nokaslr panic=-1';
const COM1 = 0x3f8;
const COM1_IRQ = 4;
const MiB = 1024 * 1024;

/** Options of {@link bootLinux}. */
export interface BootLinuxOptions {
  /** A bzImage: path or bytes (default: the newest `/boot/vmlinuz-*`). */
  kernel?: string | Uint8Array;
  /** An initramfs (cpio, optionally compressed as the kernel allows): path or bytes. Default: {@link buildInitramfs} with `command`/`shell`. */
  initramfs?: string | Uint8Array;
  /** For the default initramfs: the command /init runs (default `uname -a`). */
  command?: string;
  /** For the default initramfs: start a shell on the console instead of a command. */
  shell?: boolean;
  /** The kernel command line (default {@link DEFAULT_APPEND}). */
  append?: string;
  /** Guest RAM in MiB (default 256, at most 3072: there is no PCI hole below 4 GiB). */
  memoryMb?: number;
  /** vCPUs (default 1). More than one runs each on its own thread (`runAsync`): slower exits. */
  cpus?: number;
  /** Give up after this long (default 300 s); the result is then `timeout`. */
  timeoutMs?: number;
  /** Receives the guest's console output as it comes (default: dropped; it is also in the result). */
  onConsole?: (text: string) => void;
  /** Receives the VMM's own one-line messages (unhandled I/O and the like). */
  onLog?: (line: string) => void;
  /** Bytes to type into the UART (e.g. `process.stdin` in raw mode). */
  input?: NodeJS.ReadableStream;
  /** Aborting it stops the guest where it is; the result is then `aborted`. */
  signal?: AbortSignal;
  /** The KVM device (default `/dev/kvm`). */
  device?: string;
}

/** How the guest ended. */
export type BootOutcome = 'poweroff' | 'reboot' | 'panic' | 'timeout' | 'aborted' | 'error';

/** What {@link bootLinux} resolves with. */
export interface BootResult {
  outcome: BootOutcome;
  /** One line: what ended it (the register written, the exit, the panic message). */
  detail: string;
  /** Everything the guest wrote to the console. */
  console: string;
  /** Milliseconds from `KVM_CREATE_VM` to: `Linux version` on the console, the init's first line, the end. */
  times: { linuxVersionMs: number | null; initLineMs: number | null; endMs: number };
  /** VM exits served. */
  exits: number;
  /** Milliseconds spent inside KVM_RUN, summed over vCPUs (with one, the rest of `endMs` is this process serving exits). */
  inRunMs: number;
  /** The vCPU's non-zero counters from KVM's binary stats (exits, halt_exits, ...). */
  kvmStats: Record<string, number>;
  /** The busiest ports, `0x3fd:1234 ...`. */
  ioByPort: string;
  /** Ports nobody handled (`in 0x2f9`, ...), in order of first use. */
  unhandled: string[];
  /** The kernel's version string from its setup header. */
  kernelVersion: string;
  /** The command line the guest was given. */
  append: string;
  memoryMb: number;
  layout: LinuxLayout;
}

/** The newest `/boot/vmlinuz-*` (by version), the kernel this machine boots. */
export function defaultKernel(): string {
  const names = readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-'));
  names.sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  if (!names[0]) throw new Error('no /boot/vmlinuz-* found; pass --kernel PATH (Debian: apt-get install linux-image-amd64)');
  return `/boot/${names[0]}`;
}

// Collects console bytes into lines, hands text on, and notes when marker lines first appear.
class ConsoleSink {
  readonly #bytes = new Uint8Array(4096);
  #n = 0;
  readonly #decoder = new TextDecoder('utf-8');
  text = '';
  readonly seen = new Map<string, number>();

  constructor(
    private readonly markers: string[],
    private readonly t0: number,
    private readonly onText: ((s: string) => void) | undefined,
  ) {}

  push(b: number): void {
    this.#bytes[this.#n++] = b;
    if (b === 0x0a || this.#n === this.#bytes.length) this.flush();
  }

  flush(): void {
    if (this.#n === 0) return;
    const s = this.#decoder.decode(this.#bytes.subarray(0, this.#n), { stream: true });
    this.#n = 0;
    const from = Math.max(0, this.text.length - 64);
    this.text += s;
    for (const m of this.markers) {
      if (!this.seen.has(m) && this.text.indexOf(m, from) >= 0) this.seen.set(m, performance.now() - this.t0);
    }
    this.onText?.(s);
  }
}

const readLE = (d: Uint8Array, at: number, size: number): number =>
  size === 1 ? (d[at] ?? 0) : size === 2 ? (d[at] ?? 0) | ((d[at + 1] ?? 0) << 8) : ((d[at] ?? 0) | ((d[at + 1] ?? 0) << 8) | ((d[at + 2] ?? 0) << 16) | ((d[at + 3] ?? 0) << 24)) >>> 0;

function writeLE(d: Uint8Array, at: number, size: number, v: number): void {
  for (let i = 0; i < size; i++) d[at + i] = (v >>> (8 * i)) & 0xff;
}

const bytesOf = (x: string | Uint8Array): Uint8Array => (typeof x === 'string' ? readFileSync(x) : x);

/**
 * KVM's supported CPUID with the APIC id of CPU `apicId` where CPUID reports
 * it (leaf 1 EBX[31:24], the x2APIC topology leaves 0xB/0x1F, AMD's 0x8000001E).
 */
export function cpuidFor(supported: readonly Readonly<CpuidEntry>[], apicId: number): CpuidEntry[] {
  return supported.map((e) => {
    const c = { ...e };
    if (c.function === 1) c.ebx = ((c.ebx & 0x00ffffff) | (apicId << 24)) >>> 0;
    else if (c.function === 0xb || c.function === 0x1f) c.edx = apicId;
    else if (c.function === 0x8000001e) c.eax = apicId;
    return c;
  });
}

/** Options of {@link LinuxMachine.run}. */
export interface RunLinuxOptions {
  /** Give up after this long from now (default 300 s); the result is then `timeout`. */
  timeoutMs?: number;
  /** Return `'paused'` as soon as this holds for the console text so far (checked every few ms). */
  until?: (console: string) => boolean;
  /** Bytes to type into the UART while running (e.g. `process.stdin` in raw mode). */
  input?: NodeJS.ReadableStream;
  /** Aborting it stops the guest where it is; the result is then `aborted`. */
  signal?: AbortSignal;
}

/** Options of {@link LinuxMachine.boot} and {@link LinuxMachine.restore}. */
export interface MachineOptions {
  /** Receives the guest's console output as it comes (it is also in {@link LinuxMachine.console}). */
  onConsole?: (text: string) => void;
  /** Receives the VMM's own one-line messages (unhandled I/O and the like). */
  onLog?: (line: string) => void;
  /** The KVM device (default `/dev/kvm`). */
  device?: string;
}

/** A {@link LinuxMachine.snapshot}: the VM's (node-kvm's `Vm.snapshot()`) and our devices' state. */
export interface LinuxSnapshot {
  vm: Snapshot;
  devices: { uart: UartState; cmos: ReturnType<Cmos['save']>; pm: ReturnType<AcpiPm['save']> };
  kernelVersion: string;
  append: string;
  memoryMb: number;
  layout: LinuxLayout;
}

type Ending = { outcome: BootOutcome; detail: string };

/**
 * A PC running Linux: the VM, its vCPU, the devices and the console. Make one
 * with {@link LinuxMachine.boot} (or {@link LinuxMachine.restore}), drive it
 * with {@link LinuxMachine.run}, close it (or `using`).
 */
export class LinuxMachine {
  readonly kvm: Kvm;
  readonly vm: Vm;
  /** The vCPUs, by id; vCPU 0 boots, the others wait for the kernel's INIT/SIPI. */
  readonly vcpus: Vcpu[];
  readonly kernelVersion: string;
  readonly append: string;
  readonly memoryMb: number;
  readonly layout: LinuxLayout;
  /** `performance.now()` just before `KVM_CREATE_VM` (or the restore): the times count from here. */
  readonly t0: number;
  readonly #owned: Disposable[];
  readonly #sink: ConsoleSink;
  readonly #bus: PortBus;
  readonly #uart: Uart16550;
  readonly #cmos = new Cmos();
  readonly #pm: AcpiPm;
  readonly #coalesced: boolean;
  #ending: Ending | undefined;
  #exits = 0;
  #inRunMs = 0;
  readonly #ioByPort = new Map<number, number>();
  readonly #mmioLogged = new Set<bigint>();

  private constructor(
    parts: { kvm: Kvm; vm: Vm; vcpus: Vcpu[]; owned: Disposable[]; t0: number },
    info: { kernelVersion: string; append: string; memoryMb: number; layout: LinuxLayout },
    options: MachineOptions,
  ) {
    ({ kvm: this.kvm, vm: this.vm, vcpus: this.vcpus, t0: this.t0 } = parts);
    this.#owned = parts.owned;
    ({ kernelVersion: this.kernelVersion, append: this.append, memoryMb: this.memoryMb, layout: this.layout } = info);
    const log = options.onLog ?? (() => {});
    const end = (outcome: BootOutcome, detail: string): void => this.#end(outcome, detail);
    this.#sink = new ConsoleSink(['Linux version', INIT_LINE, 'Kernel panic'], this.t0, options.onConsole);
    const bus = (this.#bus = new PortBus(log));
    this.#uart = new Uart16550(COM1, (level) => this.vm.irqLine(COM1_IRQ, level), (b) => this.#sink.push(b));
    bus.map(COM1, 8, this.#uart);
    bus.map(0x70, 2, this.#cmos);
    const kbc = new KeyboardController((how) => end('reboot', how));
    bus.map(0x60, 1, kbc);
    bus.map(0x64, 1, kbc);
    this.#pm = new AcpiPm((how) => end('poweroff', how), (how) => end('reboot', how));
    bus.map(ACPI_PORTS.pm1aEvt, 6, this.#pm);
    bus.map(ACPI_PORTS.reset, 1, this.#pm);
    // Port 0x80 is the POST-code / I/O-delay port: written often, meaning nothing.
    bus.map(0x80, 1, { read: () => 0xff, write: () => {} });

    // Writes to THR (0x3f8) queue in KVM's coalesced-PIO ring instead of each
    // exiting; they are drained before every exit is served, so they reach the
    // UART in order with everything else. That halves the exits of console
    // output (per character Linux reads LSR, which must exit, then writes THR).
    let coalesced = false;
    try {
      this.vm.addCoalescedZone({ address: COM1, size: 1, pio: true });
      coalesced = true;
    } catch (e) {
      log(`no coalesced PIO (${(e as Error).message}): every console byte exits`);
    }
    this.#coalesced = coalesced;
  }

  /**
   * Creates a VM and puts Linux in it, ready to run from startup_64: RAM
   * with an e820 map, ACPI tables, the bzImage, command line and initramfs,
   * the in-kernel irqchip and PIT, and the vCPU in long mode. Throws when
   * that cannot be done (no KVM, a bad bzImage, too little memory).
   */
  static boot(options: BootLinuxOptions = {}): LinuxMachine {
    const memoryMb = options.memoryMb ?? 256;
    if (!Number.isInteger(memoryMb) || memoryMb < 128 || memoryMb > 3072) throw new RangeError(`memoryMb must be an integer from 128 to 3072, not ${memoryMb}`);
    const cpus = options.cpus ?? 1;
    if (!Number.isInteger(cpus) || cpus < 1 || cpus > 16) throw new RangeError(`cpus must be an integer from 1 to 16, not ${cpus}`);
    const memorySize = memoryMb * MiB;
    const append = options.append ?? DEFAULT_APPEND;
    const log = options.onLog ?? (() => {});
    const bz = parseBzImage(bytesOf(options.kernel ?? defaultKernel()));
    const initrd = options.initramfs !== undefined ? bytesOf(options.initramfs) : buildInitramfs({ ...(options.command !== undefined ? { command: options.command } : {}), ...(options.shell ? { shell: true } : {}) });

    const owned: Disposable[] = [];
    try {
      const kvm = Kvm.open(options.device);
      owned.push(kvm);
      const memory = GuestMemory.allocate(memorySize);
      owned.push(memory);
      const t0 = performance.now();
      const vm = kvm.createVm();
      owned.push(vm);
      vm.addSlot({ guestPhysAddr: 0, memory });
      const mem = (gpa: number, length: number): Uint8Array => vm.memoryAt(gpa, length);

      // The in-kernel PIC/IOAPIC/LAPIC and PIT, created before the vCPUs so that they get LAPICs.
      vm.createIrqchip();
      vm.createPit({ speakerDummy: true }); // also port 0x61 (PIT channel 2 gate and output) in-kernel
      // With the in-kernel irqchip, vCPU 0 is the bootstrap processor and the
      // others wait (MP state "uninitialized") for the kernel's INIT and SIPI.
      const vcpus = Array.from({ length: cpus }, () => vm.createVcpu());
      const vcpu = vcpus[0]!;

      const rsdp = writeAcpiTables(mem, { cpus });
      const layout = placeLinux(bz, mem, { memorySize, cmdline: append, initrd, rsdp });
      // Long mode at startup_64, as the 64-bit boot protocol asks: identity-mapped
      // RAM (2 MiB pages), a GDT with __BOOT_CS = 0x10 and __BOOT_DS = 0x18 (the
      // library's flat GDT has exactly these), interrupts off, rsi = boot_params.
      // setupMode also hands the vCPU the CPUID KVM supports.
      setupMode(vcpu, {
        mode: 'long',
        entry: layout.entry,
        layout: { gdt: 0x500, pageTables: 0x30000 },
        avoid: [
          { start: BigInt(layout.bootParams), end: BigInt(layout.cmdline + 0x1000), what: 'boot_params and the command line' },
          { start: 0xe0000n, end: 0x100000n, what: 'the ACPI tables' },
        ],
      });
      vcpu.setRegs({ rsi: BigInt(layout.bootParams), rflags: 2n });
      const supported = kvm.getSupportedCpuid();
      const xsave = supported.find((e) => e.function === 0xd && e.index === 0);
      for (const v of vcpus) {
        // Each CPU's CPUID names its own APIC id, as firmware would.
        v.setCpuid(cpuidFor(supported, v.id));
        // XCR0 as Linux will set it (every user feature KVM supports). KVM sizes
        // CPUID leaf 0xD from the XCR0 it knows of; under QEMU TCG's nested SVM (the
        // sandbox) the guest's XSETBV never reaches KVM, so the size would stay at
        // x87-only and Linux would warn of an XSAVE size mismatch and drop XSAVE.
        if (xsave) {
          try {
            v.setXcrs({ flags: 0, xcrs: [{ xcr: 0, value: BigInt(xsave.eax) | (BigInt(xsave.edx) << 32n) }] });
          } catch (e) {
            log(`KVM_SET_XCRS refused XCR0 0x${xsave.eax.toString(16)}: ${(e as Error).message}`);
          }
        }
        // What firmware leaves behind, the same on every CPU (Linux checks):
        // fast strings on, MTRRs on with write-back default.
        v.setMsrs([
          { index: 0x1a0, value: 1n }, // IA32_MISC_ENABLE.FAST_STRING
          { index: 0x2ff, value: 0xc06n }, // IA32_MTRR_DEF_TYPE: E | WB
        ]);
      }
      return new LinuxMachine({ kvm, vm, vcpus, owned, t0 }, { kernelVersion: bz.versionString, append, memoryMb, layout }, options);
    } catch (e) {
      for (const o of owned.reverse()) o[Symbol.dispose]();
      throw e;
    }
  }

  /**
   * A new machine that goes on from a {@link LinuxMachine.snapshot}: node-kvm
   * restores the VM (vCPU state, irqchip, PIT, clock, memory); we restore the
   * devices. Its console starts empty.
   */
  static restore(snapshot: LinuxSnapshot, options: MachineOptions = {}): LinuxMachine {
    const kvm = Kvm.open(options.device);
    try {
      const t0 = performance.now();
      const restored = Vm.restore(kvm, snapshot.vm);
      if (!restored.vcpus.length) throw new Error('the snapshot has no vCPU');
      const m = new LinuxMachine({ kvm, vm: restored.vm, vcpus: restored.vcpus, owned: [kvm, restored], t0 }, snapshot, options);
      m.#uart.load(snapshot.devices.uart);
      m.#cmos.load(snapshot.devices.cmos);
      m.#pm.load(snapshot.devices.pm);
      return m;
    } catch (e) {
      kvm.close();
      throw e;
    }
  }

  /** vCPU 0, the bootstrap processor. */
  get vcpu(): Vcpu {
    return this.vcpus[0]!;
  }

  /** Everything the guest wrote to the console so far. */
  get console(): string {
    return this.#sink.text;
  }

  /** Types `text` into the UART (the guest reads it as the console's input). */
  type(text: string | Uint8Array): void {
    this.#uart.receive(typeof text === 'string' ? new TextEncoder().encode(text) : text);
  }

  /**
   * The whole machine as data: the VM's snapshot (memory images included)
   * and our devices' registers. Take it between runs.
   */
  snapshot(): LinuxSnapshot {
    if (this.#coalesced) this.vcpu.drainCoalesced(this.#onCoalesced);
    return {
      vm: this.vm.snapshot(),
      devices: { uart: this.#uart.save(), cmos: this.#cmos.save(), pm: this.#pm.save() },
      kernelVersion: this.kernelVersion,
      append: this.append,
      memoryMb: this.memoryMb,
      layout: this.layout,
    };
  }

  readonly #onCoalesced = (address: bigint, _length: number, data: Uint8Array): void => this.#bus.write(Number(address), 1, data[0] ?? 0);

  #end(outcome: BootOutcome, detail: string): void {
    this.#ending ??= { outcome, detail };
  }

  // Serves one exit of `vcpu`: the coalesced THR writes first, then the exit.
  #serve(vcpu: Vcpu, exit: VmExit): void {
    this.#exits++;
    if (this.#coalesced) vcpu.drainCoalesced(this.#onCoalesced);
    const bus = this.#bus;
    switch (exit.reason) {
      case 'io': {
        const { port, size, count, data } = exit;
        this.#ioByPort.set(port, (this.#ioByPort.get(port) ?? 0) + 1);
        if (exit.direction === 'out') {
          if (count === 1) bus.write(port, size, exit.value);
          else for (let i = 0; i < count; i++) bus.write(port, size, readLE(data, i * size, size));
        } else {
          for (let i = 0; i < count; i++) writeLE(data, i * size, size, bus.read(port, size));
        }
        return;
      }
      case 'mmio': {
        const page = exit.address & ~0xfffn;
        if (!this.#mmioLogged.has(page)) {
          this.#mmioLogged.add(page);
          bus.note(`unhandled MMIO: ${exit.isWrite ? 'write' : 'read'} at 0x${exit.address.toString(16)} (${exit.length} bytes)${exit.isWrite ? ' ignored' : ' -> all ones'} (logged once per page)`);
        }
        if (!exit.isWrite) exit.data.fill(0xff);
        return;
      }
      case 'intr':
        return;
      case 'shutdown':
        return this.#end('reboot', `triple fault (KVM_EXIT_SHUTDOWN on vCPU ${vcpu.id})`);
      case 'system_event':
        return this.#end(exit.type === 'shutdown' ? 'poweroff' : 'reboot', `KVM_EXIT_SYSTEM_EVENT ${exit.type}`);
      case 'hlt':
        return this.#end('error', 'the vCPU halted with exits to user space (no in-kernel LAPIC?)');
      default:
        return this.#end('error', `unexpected exit on vCPU ${vcpu.id}: ${exit.reason} ${JSON.stringify(exit, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`);
    }
  }

  // What ends or pauses a run, checked every few milliseconds.
  #check(o: RunLinuxOptions, deadline: number, timeoutMs: number): 'paused' | undefined {
    this.#sink.flush();
    if (performance.now() > deadline) this.#end('timeout', `no power-off within ${Math.round(timeoutMs / 1000)} s`);
    else if (o.signal?.aborted) this.#end('aborted', 'stopped by the caller');
    else if (o.until?.(this.#sink.text)) return 'paused';
    return undefined;
  }

  /**
   * Runs the guest and serves its exits until it powers off, reboots,
   * panics, runs out of time or is aborted (the {@link BootResult}), or until
   * `until` holds (`'paused'`; run again to go on). Never throws for what the
   * guest does.
   */
  async run(options: RunLinuxOptions = {}): Promise<BootResult | 'paused'> {
    const timeoutMs = options.timeoutMs ?? 300_000;
    const deadline = performance.now() + timeoutMs;
    const onInput = (chunk: Buffer | string): void => this.#uart.receive(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    options.input?.on('data', onInput);
    let paused: 'paused' | undefined;
    try {
      paused = this.vcpus.length === 1 ? await this.#runOne(options, deadline, timeoutMs) : await this.#runAll(options, deadline, timeoutMs);
    } finally {
      options.input?.off('data', onInput);
    }
    if (paused) return paused;
    if (this.#coalesced) this.vcpu.drainCoalesced(this.#onCoalesced);
    this.#sink.flush();
    return this.#result();
  }

  // One vCPU: KVM_RUN on this thread (the cheapest exit), yielding to the
  // event loop every 25 ms so that console writes drain and input arrives.
  async #runOne(o: RunLinuxOptions, deadline: number, timeoutMs: number): Promise<'paused' | undefined> {
    const vcpu = this.vcpu;
    // Short runs when someone may type, so that input reaches a halted guest soon.
    const runOptions = { timeoutMs: o.input || o.signal || o.until ? 20 : 100 };
    let lastYield = performance.now();
    while (!this.#ending) {
      let exit: VmExit;
      const before = performance.now();
      try {
        exit = vcpu.run(runOptions);
      } catch (e) {
        this.#end('error', `KVM_RUN failed: ${(e as Error).message}`);
        break;
      }
      const now = performance.now();
      this.#inRunMs += now - before;
      this.#serve(vcpu, exit);
      if (this.#ending || now - lastYield < 25) continue;
      if (this.#check(o, deadline, timeoutMs)) return 'paused';
      if (this.#ending) break;
      await new Promise((r) => setImmediate(r));
      lastYield = performance.now();
    }
    return undefined;
  }

  // Several vCPUs: each runs on its own thread (runAsync) and its exits are
  // served here, one at a time; a timer checks the ending and kicks them all.
  async #runAll(o: RunLinuxOptions, deadline: number, timeoutMs: number): Promise<'paused' | undefined> {
    let paused: 'paused' | undefined;
    const stopAll = (): void => {
      for (const v of this.vcpus) v.kick();
    };
    const ticker = setInterval(() => {
      paused = this.#check(o, deadline, timeoutMs);
      if (this.#ending || paused) stopAll();
    }, 25);
    try {
      await Promise.all(this.vcpus.map(async (vcpu) => {
        while (!this.#ending && !paused) {
          const before = performance.now();
          let exit: VmExit;
          try {
            exit = await vcpu.runAsync({ timeoutMs: 100 });
          } catch (e) {
            this.#end('error', `KVM_RUN failed on vCPU ${vcpu.id}: ${(e as Error).message}`);
            break;
          }
          this.#inRunMs += performance.now() - before;
          this.#serve(vcpu, exit);
        }
        stopAll();
      }));
    } finally {
      clearInterval(ticker);
    }
    return this.#ending ? undefined : paused;
  }

  #result(): BootResult {
    const endMs = performance.now() - this.t0;
    const kvmStats: Record<string, number> = {};
    try {
      using stats = this.vcpu.openStats();
      for (const [k, v] of stats.read()) if (typeof v === 'bigint' && v !== 0n) kvmStats[k] = Number(v);
    } catch { /* no binary stats on this kernel */ }
    const text = this.#sink.text;
    let { outcome, detail } = this.#ending ?? { outcome: 'error' as const, detail: 'the run loop ended without a reason' };
    // panic=-1 reboots at once on a panic: a reset after "Kernel panic" is the panic.
    const panic = /Kernel panic - not syncing:?[^\n]*/.exec(text);
    if (outcome === 'reboot' && panic) {
      outcome = 'panic';
      detail = `${panic[0].trim()} (then ${detail})`;
    }
    const seen = this.#sink.seen;
    return {
      outcome,
      detail,
      console: text,
      times: { linuxVersionMs: seen.get('Linux version') ?? null, initLineMs: seen.get(INIT_LINE) ?? null, endMs },
      exits: this.#exits,
      inRunMs: this.#inRunMs,
      kvmStats,
      ioByPort: [...this.#ioByPort].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([p, n]) => `0x${p.toString(16)}:${n}`).join(' '),
      unhandled: this.#bus.unhandled,
      kernelVersion: this.kernelVersion,
      append: this.append,
      memoryMb: this.memoryMb,
      layout: this.layout,
    };
  }

  /** Closes the VM (its vCPU too), its memory and /dev/kvm. */
  close(): void {
    for (const o of this.#owned.splice(0).reverse()) o[Symbol.dispose]();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Boots Linux in a fresh VM on this process's KVM and serves it until it
 * powers off, reboots, panics or runs out of time ({@link LinuxMachine.boot},
 * then {@link LinuxMachine.run}). Never throws for what the guest does;
 * throws only when the VM cannot be set up (no KVM, a bad bzImage, too
 * little memory).
 */
export async function bootLinux(options: BootLinuxOptions = {}): Promise<BootResult> {
  using machine = LinuxMachine.boot(options);
  const r = await machine.run({
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.input ? { input: options.input } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (r === 'paused') throw new Error('unreachable: no until given');
  return r;
}

/** The last `n` non-empty lines of a console transcript. */
export function lastLines(text: string, n: number): string[] {
  return text.replace(/\r/g, '').split('\n').filter((l) => l.trim() !== '').slice(-n);
}

// ------------------------------------------------------------------ CLI

const USAGE = `usage: npm run example:linux [-- options]
  --kernel PATH     bzImage to boot (default: the newest /boot/vmlinuz-*)
  --initrd PATH     initramfs to use instead of the generated busybox one
  --append "..."    kernel command line (default: "${DEFAULT_APPEND}")
  --memory MB       guest RAM (default 256)
  --cpus N          vCPUs (default 1; more run each on its own thread)
  --run "CMD"       command the generated /init runs (default: uname -a)
  --shell           interactive: /init starts a shell, stdin goes to the UART
  --timeout SEC     give up after SEC seconds (default 300)
  --json            print the result as one JSON line at the end
  --sandbox         boot inside the node-kvm sandbox even on a hardware-assisted KVM
  --host            boot on this host's KVM whatever it is
  --verbose         log each unhandled port as the guest first uses it (default: listed at the end)`;

type Cli = {
  kernel?: string; initrd?: string; append?: string; memory?: string; cpus?: string; run?: string; timeout?: string;
  shell?: boolean; json?: boolean; sandbox?: boolean; host?: boolean; verbose?: boolean; help?: boolean;
};

async function main(argv: string[]): Promise<number> {
  let cli: Cli;
  try {
    cli = parseArgs({
      args: argv,
      options: {
        kernel: { type: 'string' }, initrd: { type: 'string' }, append: { type: 'string' }, memory: { type: 'string' }, cpus: { type: 'string' },
        run: { type: 'string' }, timeout: { type: 'string' }, shell: { type: 'boolean' }, json: { type: 'boolean' },
        sandbox: { type: 'boolean' }, host: { type: 'boolean' }, verbose: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values as Cli;
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (cli.help) {
    console.log(USAGE);
    return 0;
  }
  const say = (s: string): void => void process.stderr.write(`[node-kvm linux] ${s}\n`);
  for (const [name, v] of [['--memory', cli.memory], ['--cpus', cli.cpus], ['--timeout', cli.timeout]] as const) {
    if (v !== undefined && !(Number(v) > 0)) {
      console.error(`${name} takes a positive number, not ${JSON.stringify(v)}\n${USAGE}`);
      return 2;
    }
  }
  const inSandbox = process.env.NODE_KVM_IN_SANDBOX === '1';

  // Where to boot: on hardware-assisted KVM here, else in the sandbox.
  if (!inSandbox && !cli.host) {
    const probe = probeKvm();
    const hardware = probe.usable && (probe.vendorModule === 'kvm_intel' || probe.vendorModule === 'kvm_amd');
    if (!hardware || cli.sandbox) {
      const why = cli.sandbox
        ? 'as asked (--sandbox)'
        : !probe.usable
          ? `this host has no usable /dev/kvm (${probe.reason ?? 'unknown'})`
          : `this host's KVM is ${probe.vendorModule}, not hardware-assisted (PVM emulates every kernel-mode instruction: a boot would take many minutes)`;
      say(`${why}; booting inside the node-kvm sandbox (nested kvm_amd under QEMU TCG)`);
      if (cli.shell) say('note: the sandbox has no stdin, so --shell cannot be typed into there; interactive mode needs a host with VT-x/AMD-V');
      const { runInSandbox } = await import('../../sandbox/sandbox.mjs');
      const tsx = join(__dirname, '../../node_modules/tsx/dist/cli.mjs');
      const { exitCode } = await runInSandbox({
        command: [process.execPath, tsx, resolve(__filename), ...argv],
        // Room for the guest's RAM beside the sandbox's own kernel and node.
        memoryMb: Math.max(2048, Number(cli.memory ?? 256) + 1024),
        cpus: Number(cli.cpus ?? 1),
        timeoutMs: (Number(cli.timeout ?? 300) + 240) * 1000,
      });
      return exitCode;
    }
    say(`booting on this host's KVM (${probe.vendorModule}, hardware-assisted)`);
  } else if (inSandbox) {
    say('running inside the node-kvm sandbox: nested kvm_amd with NPT');
  }

  const memoryMb = Number(cli.memory ?? 256);
  const timeoutMs = Number(cli.timeout ?? 300) * 1000;
  const kernel = cli.kernel ?? defaultKernel();
  const interactive = cli.shell === true && process.stdin.isTTY === true && !inSandbox;
  say(`kernel ${kernel}, ${memoryMb} MiB, ${cli.cpus ?? 1} vCPU(s), command line "${cli.append ?? DEFAULT_APPEND}"`);
  // Interactive: the terminal's keys go to the UART as they are (raw mode,
  // so ^C reaches the guest's shell); Ctrl-] stops the VM, as in telnet.
  const stop = new AbortController();
  const keys = new PassThrough();
  if (interactive) {
    process.stdin.setRawMode(true);
    process.stdin.on('data', (chunk: Buffer) => {
      const at = chunk.indexOf(0x1d);
      if (at >= 0) {
        keys.write(chunk.subarray(0, at));
        stop.abort();
      } else keys.write(chunk);
    });
    say('interactive: your keys go to the guest; Ctrl-] stops the VM');
  }
  let result: BootResult;
  try {
    result = await bootLinux({
      kernel,
      ...(cli.initrd ? { initramfs: cli.initrd } : {}),
      ...(cli.append !== undefined ? { append: cli.append } : {}),
      ...(cli.run !== undefined ? { command: cli.run } : {}),
      ...(cli.shell ? { shell: true } : {}),
      memoryMb,
      cpus: Number(cli.cpus ?? 1),
      timeoutMs,
      onConsole: (s) => process.stdout.write(s),
      onLog: (line) => {
        if (cli.verbose || !line.startsWith('unhandled')) say(line);
      },
      ...(interactive ? { input: keys, signal: stop.signal } : {}),
    });
  } finally {
    if (interactive) {
      process.stdin.setRawMode(false);
      process.stdin.pause();
    }
  }
  const t = result.times;
  const s = (ms: number | null): string => (ms === null ? 'never' : `${(ms / 1000).toFixed(2)} s`);
  const where = inSandbox ? 'sandbox (nested kvm_amd)' : 'host KVM';
  if (!cli.verbose && result.unhandled.length) say(`unhandled I/O (answered with all ones or ignored; --verbose logs each as it happens): ${result.unhandled.join(', ')}`);
  const what = { poweroff: 'guest powered off', reboot: 'guest rebooted', panic: 'guest kernel panicked', timeout: 'timed out', aborted: 'stopped', error: 'VMM error' }[result.outcome];
  say(`${what}: ${result.detail}`);
  say(`on ${where}: KVM_CREATE_VM -> init's first line ${s(t.initLineMs)}, -> end ${s(t.endMs)} (Linux version at ${s(t.linuxVersionMs)}; ${result.exits} exits)`);
  if (result.outcome !== 'poweroff' && result.outcome !== 'reboot' && result.outcome !== 'aborted') {
    say('last console lines:');
    for (const l of lastLines(result.console, 15)) process.stderr.write(`  | ${l}\n`);
  }
  const ms = (x: number | null): number | null => (x === null ? null : Math.round(x));
  if (cli.json) {
    console.log(JSON.stringify({
      outcome: result.outcome, detail: result.detail, where, kernel, kernelVersion: result.kernelVersion, memoryMb,
      append: result.append, createVmToInitLineMs: ms(t.initLineMs), createVmToEndMs: ms(t.endMs), createVmToLinuxVersionMs: ms(t.linuxVersionMs),
      inKvmRunMs: ms(result.inRunMs), exitsToUserSpace: result.exits, kvmStats: result.kvmStats, busiestPorts: result.ioByPort, unhandled: result.unhandled,
    }));
  }
  return { poweroff: 0, reboot: 3, aborted: 130, panic: 1, timeout: 1, error: 1 }[result.outcome];
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`[node-kvm linux] ${(e as Error).stack ?? String(e)}`);
      process.exit(1);
    },
  );
}
