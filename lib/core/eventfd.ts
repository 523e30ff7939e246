// Eventfds, and the two ways KVM uses them: KVM_IOEVENTFD (a guest write
// signals an eventfd instead of exiting) and KVM_IRQFD (writing an eventfd
// raises a guest interrupt).
import { constants as osConstants } from 'node:os';
import { binding, type NativeEventFd, type NativeVm } from './binding';
import { KvmError } from './errors';
import { invalidArgValue, outOfRange, own, validateBoolean, validateInstance, validateObject, validateOneOf, validateU32, validateU64 } from './validate';

const R = binding.ringLayouts;
const U64_MAX = (1n << 64n) - 1n;

/**
 * A Linux eventfd (`eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`): a 64-bit
 * counter that KVM signals ({@link Vm.ioeventfd}) or reads
 * ({@link Vm.irqfd}). {@link EventFd.wait} awaits it without blocking the
 * event loop (libuv polls the fd, no threadpool); an EventFd with no wait
 * pending does not keep the process alive.
 *
 * ```ts
 * using doorbell = new EventFd();
 * vm.ioeventfd({ address: 0x600, length: 1, pio: true, eventfd: doorbell });
 * const count = await doorbell.wait(); // after the guest's `out 0x600, al`
 * ```
 */
export class EventFd {
  /** @internal */
  readonly native: NativeEventFd;
  readonly #registrations = new Set<IoEventFd | IrqFd>();

  constructor() {
    this.native = new binding.EventFd();
  }

  /** The file descriptor (-1 once closed). */
  get fd(): number {
    return this.native.fd;
  }

  /** True once {@link EventFd.close} ran. */
  get closed(): boolean {
    return this.native.fd < 0;
  }

  /**
   * Adds `value` (default 1) to the counter, as a device would: an
   * {@link Vm.irqfd} registered on this EventFd raises its interrupt.
   * A `KvmError` (`EAGAIN`) when the counter would pass 2^64 - 2.
   */
  write(value: bigint | number = 1n): void {
    const v = validateU64(value, 'value', U64_MAX - 1n);
    if (v === 0n) throw outOfRange('value', '>= 1 && <= 2^64 - 2', value);
    this.native.write(v);
  }

  /**
   * The counter, read and reset to 0 without blocking; `undefined` when it
   * is 0 (or a {@link EventFd.wait} is pending, which gets it first).
   */
  read(): bigint | undefined {
    return this.native.read();
  }

  /**
   * Resolves with the counter (read and reset to 0) once it is non-zero,
   * at once when it already is. The event loop goes on meanwhile. Several
   * waits are served in order, one read each. {@link EventFd.close}
   * rejects the pending ones with a `KvmError` (`EBADF`).
   */
  wait(): Promise<bigint> {
    try {
      return this.native.wait();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** How many {@link EventFd.wait} calls are pending. */
  get pendingWaits(): number {
    return this.native.pending;
  }

  /**
   * Removes this EventFd's {@link Vm.ioeventfd} and {@link Vm.irqfd}
   * registrations, rejects the pending waits and closes the fd. Idempotent.
   */
  close(): void {
    for (const r of [...this.#registrations]) {
      try {
        r.remove();
      } catch {
        // The VM went first: nothing left to remove.
      }
    }
    this.#registrations.clear();
    this.native.close();
  }

  /** Same as {@link EventFd.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** @internal */
  track(r: IoEventFd | IrqFd, on: boolean): void {
    if (on) this.#registrations.add(r);
    else this.#registrations.delete(r);
  }
}

function liveEventFd(value: unknown, name: string, syscall: string): EventFd {
  const e = validateInstance(value, name, EventFd);
  if (e.closed) throw new KvmError(osConstants.errno.EBADF, syscall, `${name} is closed`);
  return e;
}

/** What {@link Vm.ioeventfd} registers. */
export interface IoEventFdOptions {
  /** Guest-physical address, or port number with `pio`. */
  address: bigint | number;
  /** Access size in bytes: 1, 2, 4 or 8; 0 matches any size (not with `datamatch`). */
  length: 0 | 1 | 2 | 4 | 8;
  /** Signal only when the guest writes this value (it must fit in `length` bytes). */
  datamatch?: bigint | number;
  /** A port (I/O space) rather than an MMIO address. Default false. */
  pio?: boolean;
  /** The EventFd to signal. */
  eventfd: EventFd;
}

/**
 * A `KVM_IOEVENTFD` registration: a guest write to its address (of its
 * length, with its value if `datamatch`) adds 1 to the EventFd and the
 * vCPU goes on without an exit. Made by {@link Vm.ioeventfd}.
 */
export class IoEventFd {
  readonly address: bigint;
  readonly length: number;
  readonly datamatch: bigint | undefined;
  readonly pio: boolean;
  readonly eventfd: EventFd;
  readonly #vm: NativeVm;
  #removed = false;

  /** @internal */
  constructor(vm: NativeVm, init: { address: bigint; length: number; datamatch: bigint | undefined; pio: boolean; eventfd: EventFd }) {
    this.#vm = vm;
    this.address = init.address;
    this.length = init.length;
    this.datamatch = init.datamatch;
    this.pio = init.pio;
    this.eventfd = init.eventfd;
  }

  /** True once removed (by {@link IoEventFd.remove}, closing the EventFd or the VM). */
  get removed(): boolean {
    return this.#removed || this.#vm.fd < 0;
  }

  /** Removes the registration (`KVM_IOEVENTFD_FLAG_DEASSIGN`); guest writes exit again. Idempotent. */
  remove(): void {
    if (this.removed) return;
    this.#vm.ioeventfd(this.eventfd.native, this.address, this.length, flagsOf(this) | R.ioeventfdDeassign!, this.datamatch ?? 0n);
    this.#removed = true;
    this.eventfd.track(this, false);
  }

  /** Same as {@link IoEventFd.remove}, for `using`. */
  [Symbol.dispose](): void {
    this.remove();
  }
}

function flagsOf(r: { pio: boolean; datamatch: bigint | undefined }): number {
  return (r.pio ? R.ioeventfdPio! : 0) | (r.datamatch === undefined ? 0 : R.ioeventfdDatamatch!);
}

/** @internal Validates and registers; {@link Vm.ioeventfd} is the public face. */
export function addIoEventFd(vm: NativeVm, options: IoEventFdOptions): IoEventFd {
  const o = validateObject(options, 'options', ['address', 'length', 'datamatch', 'pio', 'eventfd']);
  const pio = own(o, 'pio') === undefined ? false : validateBoolean(o.pio, 'options.pio');
  const length = validateOneOf(own(o, 'length'), 'options.length', [0, 1, 2, 4, 8] as const);
  const address = validateU64(own(o, 'address'), 'options.address');
  if (pio && address + BigInt(length) > 0x10000n) {
    throw outOfRange('options.address', `a port such that address + length <= 0x10000`, address);
  }
  if (address + BigInt(length) > U64_MAX + 1n) throw outOfRange('options.address', '<= 2^64 - length', address);
  let datamatch: bigint | undefined;
  if (own(o, 'datamatch') !== undefined) {
    if (length === 0) throw invalidArgValue('options.length', length, 'must be 1, 2, 4 or 8 with options.datamatch');
    datamatch = validateU64(o.datamatch, 'options.datamatch', (1n << BigInt(8 * length)) - 1n);
  }
  const eventfd = liveEventFd(own(o, 'eventfd'), 'options.eventfd', 'KVM_IOEVENTFD');
  const r = new IoEventFd(vm, { address, length, datamatch, pio, eventfd });
  vm.ioeventfd(eventfd.native, address, length, flagsOf(r), datamatch ?? 0n);
  eventfd.track(r, true);
  return r;
}

/** What {@link Vm.irqfd} registers. */
export interface IrqFdOptions {
  /** The GSI to raise (with the default routing of `createIrqchip`, GSIs 0-15 are the PIC's and IOAPIC's IRQ lines). */
  gsi: number;
  /** Writing this EventFd raises the GSI. */
  eventfd: EventFd;
  /**
   * A level-triggered line: KVM holds it high until the guest EOIs it,
   * then lowers it and signals this EventFd (`KVM_IRQFD_FLAG_RESAMPLE`;
   * needs `KVM_CAP_IRQFD_RESAMPLE`).
   */
  resample?: EventFd;
}

/** The highest GSI KVM routes on x86 is below this (`KVM_MAX_IRQ_ROUTES`). */
const MAX_GSI = 4096;

/**
 * A `KVM_IRQFD` registration: each write to its EventFd raises its GSI
 * (an edge, or a level until EOI with `resample`). Made by {@link Vm.irqfd}.
 */
export class IrqFd {
  readonly gsi: number;
  readonly eventfd: EventFd;
  readonly resample: EventFd | undefined;
  readonly #vm: NativeVm;
  #removed = false;

  /** @internal */
  constructor(vm: NativeVm, init: { gsi: number; eventfd: EventFd; resample: EventFd | undefined }) {
    this.#vm = vm;
    this.gsi = init.gsi;
    this.eventfd = init.eventfd;
    this.resample = init.resample;
  }

  /** True once removed (by {@link IrqFd.remove}, closing the EventFd or the VM). */
  get removed(): boolean {
    return this.#removed || this.#vm.fd < 0;
  }

  /** Removes the registration (`KVM_IRQFD_FLAG_DEASSIGN`). Idempotent. */
  remove(): void {
    if (this.removed) return;
    this.#vm.irqfd(this.eventfd.native, this.gsi, R.irqfdDeassign!);
    this.#removed = true;
    this.eventfd.track(this, false);
    this.resample?.track(this, false);
  }

  /** Same as {@link IrqFd.remove}, for `using`. */
  [Symbol.dispose](): void {
    this.remove();
  }
}

/** @internal Validates and registers; {@link Vm.irqfd} is the public face. */
export function addIrqFd(vm: NativeVm, options: IrqFdOptions): IrqFd {
  const o = validateObject(options, 'options', ['gsi', 'eventfd', 'resample']);
  const gsi = validateU32(own(o, 'gsi'), 'options.gsi', MAX_GSI - 1);
  const eventfd = liveEventFd(own(o, 'eventfd'), 'options.eventfd', 'KVM_IRQFD');
  const resample = own(o, 'resample') === undefined ? undefined : liveEventFd(o.resample, 'options.resample', 'KVM_IRQFD');
  if (resample === eventfd) throw invalidArgValue('options.resample', 'options.eventfd', 'must be another EventFd than options.eventfd');
  const r = new IrqFd(vm, { gsi, eventfd, resample });
  vm.irqfd(eventfd.native, gsi, resample === undefined ? 0 : R.irqfdResample!, resample?.native);
  eventfd.track(r, true);
  resample?.track(r, true);
  return r;
}
