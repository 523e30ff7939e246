// The devices a minimal Linux needs that the kernel's KVM does not emulate
// (the PIC, IOAPIC, LAPIC and PIT are in-kernel): a 16550A UART, the CMOS
// RTC, the keyboard controller's reset line, ACPI's PM1 registers and reset
// register. Anything else is "unhandled I/O": reads give all ones, writes
// are dropped, and each port is logged once.
import { ACPI_PORTS, ACPI_RESET_VALUE, CMOS_CENTURY, SLP_TYP_S5 } from './acpi';

/** A device on the I/O port bus; accesses are 1, 2 or 4 bytes. */
export interface PortDevice {
  read(port: number, size: number): number;
  write(port: number, size: number, value: number): void;
}

/** Port → device dispatch, with the one-line log of everything unclaimed. */
export class PortBus {
  readonly #devices: (PortDevice | undefined)[] = new Array(0x10000);
  readonly #logged = new Set<string>();
  /** One entry per port and direction nobody handles, in order of first use. */
  readonly unhandled: string[] = [];

  constructor(private readonly log: (line: string) => void) {}

  /** Logs a line of the VMM's own (e.g. an unhandled MMIO access). */
  note(line: string): void {
    this.log(line);
  }

  /** Claims `count` ports from `base` for `device`. */
  map(base: number, count: number, device: PortDevice): void {
    for (let p = base; p < base + count; p++) this.#devices[p] = device;
  }

  read(port: number, size: number): number {
    const d = this.#devices[port];
    if (d) return d.read(port, size);
    this.#unhandled('in', port, size);
    return size === 4 ? 0xffffffff : (1 << (size * 8)) - 1;
  }

  write(port: number, size: number, value: number): void {
    const d = this.#devices[port];
    if (d) return d.write(port, size, value);
    this.#unhandled('out', port, size, value);
  }

  #unhandled(dir: 'in' | 'out', port: number, size: number, value?: number): void {
    const key = `${dir} 0x${port.toString(16)}`;
    if (this.#logged.has(key)) return;
    this.#logged.add(key);
    this.unhandled.push(key);
    this.log(
      dir === 'in'
        ? `unhandled I/O: in 0x${port.toString(16)} (${size} byte${size > 1 ? 's' : ''}) -> all ones (logged once per port)`
        : `unhandled I/O: out 0x${port.toString(16)} (${size} byte${size > 1 ? 's' : ''}) = 0x${(value ?? 0).toString(16)} ignored (logged once per port)`,
    );
  }
}

// 16550 registers and bits (include/uapi/linux/serial_reg.h).
const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IER_RLSI = 0x04;
const IER_MSI = 0x08;
const IIR_NO_INT = 0x01;
const IIR_MSI = 0x00;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_RLSI = 0x06;
const IIR_FIFO = 0xc0;
const FCR_ENABLE = 0x01;
const FCR_CLEAR_RX = 0x02;
const LCR_DLAB = 0x80;
const MCR_LOOP = 0x10;
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_BI = 0x10;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const MSR_DELTAS = 0x0f;
const MSR_CTS = 0x10;
const MSR_DSR = 0x20;
const MSR_DCD = 0x80;

/** What {@link Uart16550.save} returns. */
export interface UartState {
  ier: number; lcr: number; mcr: number; lsr: number; msr: number; scr: number; dll: number; dlm: number;
  fifo: boolean; thrPending: boolean; rx: number[];
}

/**
 * A 16550A UART (the console, ttyS0 at 0x3f8, IRQ 4), modelled on QEMU's:
 * transmission is instant (THR is always empty again at once), received bytes
 * wait in a queue, and the interrupt line is high exactly while IIR has
 * something to report. Linux's probe finds a 16550A: the scratch register,
 * IER read-back, the loopback test (MSR mirrors MCR) and the FIFO bits in IIR.
 */
export class Uart16550 implements PortDevice {
  #ier = 0;
  #iir = IIR_NO_INT;
  #lcr = 0;
  #mcr = 0;
  #lsr = LSR_THRE | LSR_TEMT;
  #msr = MSR_DCD | MSR_DSR | MSR_CTS;
  #scr = 0;
  #dll = 0x0c;
  #dlm = 0;
  #fifo = false;
  #thrPending = false;
  #line = false;
  readonly #rx: number[] = [];

  /**
   * @param base the first port (0x3f8 for ttyS0)
   * @param setIrq drives the UART's interrupt line
   * @param onTransmit each byte the guest sends
   */
  constructor(
    readonly base: number,
    private readonly setIrq: (level: boolean) => void,
    private readonly onTransmit: (byte: number) => void,
  ) {}

  /** The registers and queued input, JSON-able, for a snapshot. */
  save(): UartState {
    return {
      ier: this.#ier, lcr: this.#lcr, mcr: this.#mcr, lsr: this.#lsr, msr: this.#msr, scr: this.#scr,
      dll: this.#dll, dlm: this.#dlm, fifo: this.#fifo, thrPending: this.#thrPending, rx: [...this.#rx],
    };
  }

  /** Takes a {@link Uart16550.save} back and drives the interrupt line to match (a new VM's line starts low). */
  load(s: UartState): void {
    this.#ier = s.ier;
    this.#lcr = s.lcr;
    this.#mcr = s.mcr;
    this.#lsr = s.lsr;
    this.#msr = s.msr;
    this.#scr = s.scr;
    this.#dll = s.dll;
    this.#dlm = s.dlm;
    this.#fifo = s.fifo;
    this.#thrPending = s.thrPending;
    this.#rx.splice(0, this.#rx.length, ...s.rx);
    this.#line = false;
    this.#update();
  }

  /** Queues bytes for the guest to read (the terminal's input). */
  receive(bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.#rx.push((bytes[i] ?? 0) & 0xff);
    if (this.#rx.length) this.#lsr |= LSR_DR;
    this.#update();
  }

  read(port: number, size: number): number {
    let v = this.#read8(port - this.base);
    // Wider accesses are not something a 16550 driver does; give the first byte.
    if (size > 1) v |= size === 4 ? 0xffffff00 : 0xff00;
    return v >>> 0;
  }

  write(port: number, _size: number, value: number): void {
    this.#write8(port - this.base, value & 0xff);
  }

  #read8(reg: number): number {
    switch (reg) {
      case 0: {
        if (this.#lcr & LCR_DLAB) return this.#dll;
        const b = this.#rx.shift() ?? 0;
        if (!this.#rx.length) this.#lsr &= ~(LSR_DR | LSR_BI);
        this.#update();
        return b;
      }
      case 1:
        return this.#lcr & LCR_DLAB ? this.#dlm : this.#ier;
      case 2: {
        const v = this.#iir;
        // Reading IIR acknowledges a THR-empty interrupt.
        if ((v & 0x0f) === IIR_THRI) {
          this.#thrPending = false;
          this.#update();
        }
        return v;
      }
      case 3:
        return this.#lcr;
      case 4:
        return this.#mcr;
      case 5: {
        const v = this.#lsr;
        this.#lsr &= ~(LSR_BI | LSR_OE);
        return v;
      }
      case 6: {
        if (this.#mcr & MCR_LOOP) {
          // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
          const m = this.#mcr;
          return ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4);
        }
        const v = this.#msr;
        this.#msr &= ~MSR_DELTAS;
        this.#update();
        return v;
      }
      default:
        return this.#scr;
    }
  }

  #write8(reg: number, v: number): void {
    switch (reg) {
      case 0:
        if (this.#lcr & LCR_DLAB) {
          this.#dll = v;
          return;
        }
        if (this.#mcr & MCR_LOOP) this.receive([v]);
        else this.onTransmit(v);
        this.#lsr |= LSR_THRE | LSR_TEMT;
        this.#thrPending = true;
        this.#update();
        return;
      case 1: {
        if (this.#lcr & LCR_DLAB) {
          this.#dlm = v;
          return;
        }
        const old = this.#ier;
        this.#ier = v & 0x0f;
        // Enabling the THR interrupt while THR is empty raises it at once.
        if (!(old & IER_THRI) && this.#ier & IER_THRI && this.#lsr & LSR_THRE) this.#thrPending = true;
        this.#update();
        return;
      }
      case 2:
        this.#fifo = (v & FCR_ENABLE) !== 0;
        if (v & FCR_CLEAR_RX) {
          this.#rx.length = 0;
          this.#lsr &= ~LSR_DR;
        }
        this.#update();
        return;
      case 3:
        this.#lcr = v;
        return;
      case 4:
        this.#mcr = v & 0x1f;
        return;
      case 5:
        return; // LSR is read-only
      case 6:
        return;
      default:
        this.#scr = v;
    }
  }

  // Recomputes IIR by priority and drives the line.
  #update(): void {
    let id = IIR_NO_INT;
    if (this.#ier & IER_RLSI && this.#lsr & (LSR_OE | LSR_BI)) id = IIR_RLSI;
    else if (this.#ier & IER_RDI && this.#lsr & LSR_DR) id = IIR_RDI;
    else if (this.#ier & IER_THRI && this.#thrPending) id = IIR_THRI;
    else if (this.#ier & IER_MSI && this.#msr & MSR_DELTAS) id = IIR_MSI;
    this.#iir = id | (this.#fifo ? IIR_FIFO : 0);
    const line = id !== IIR_NO_INT;
    if (line !== this.#line) {
      this.#line = line;
      this.setIrq(line);
    }
  }
}

/**
 * The CMOS RAM and MC146818 RTC at ports 0x70 (index, bit 7 masks NMIs) and
 * 0x71 (data): the time of day in BCD, 24-hour mode, never "update in
 * progress", and 128 bytes of RAM for everything else.
 */
export class Cmos implements PortDevice {
  #index = 0;
  readonly #ram = new Uint8Array(128);

  constructor() {
    this.#ram[0x0a] = 0x26; // 32.768 kHz divider, 1024 Hz rate
    this.#ram[0x0b] = 0x02; // 24-hour, BCD, no interrupts
    this.#ram[0x0d] = 0x80; // battery good: RAM and time valid
  }

  /** The index register and RAM, for a snapshot (the clock is the host's). */
  save(): { index: number; ram: number[] } {
    return { index: this.#index, ram: [...this.#ram] };
  }

  load(s: { index: number; ram: number[] }): void {
    this.#index = s.index;
    this.#ram.set(s.ram);
  }

  read(port: number): number {
    if (port === 0x70) return this.#index;
    const i = this.#index;
    const t = new Date();
    const bin = (this.#ram[0x0b] ?? 0) & 0x04;
    const enc = (n: number): number => (bin ? n : ((Math.floor(n / 10) << 4) | n % 10));
    switch (i) {
      case 0x00: return enc(t.getUTCSeconds());
      case 0x02: return enc(t.getUTCMinutes());
      case 0x04: return enc(t.getUTCHours());
      case 0x06: return enc(t.getUTCDay() + 1);
      case 0x07: return enc(t.getUTCDate());
      case 0x08: return enc(t.getUTCMonth() + 1);
      case 0x09: return enc(t.getUTCFullYear() % 100);
      case CMOS_CENTURY: return enc(Math.floor(t.getUTCFullYear() / 100));
      case 0x0a: return (this.#ram[0x0a] ?? 0) & 0x7f; // UIP always clear
      case 0x0c: return 0; // no interrupt flags: we never raise IRQ 8
      default: return this.#ram[i] ?? 0xff;
    }
  }

  write(port: number, _size: number, value: number): void {
    if (port === 0x70) {
      this.#index = value & 0x7f;
      return;
    }
    // The clock itself is the host's; writes to it are dropped, RAM keeps the rest.
    if (this.#index <= 0x09 || this.#index === 0x0c || this.#index === 0x0d) return;
    this.#ram[this.#index] = value & 0xff;
  }
}

/**
 * The keyboard controller as far as rebooting goes: status reads say "ready"
 * (so Linux's reset path does not spin), and command 0xFE pulses the CPU
 * reset line. Port 0x60 reads 0. The FADT says there is no 8042, so Linux's
 * i8042 driver does not probe it.
 */
export class KeyboardController implements PortDevice {
  constructor(private readonly onReset: (how: string) => void) {}

  read(): number {
    return 0;
  }

  write(port: number, _size: number, value: number): void {
    if (port === 0x64 && (value & 0xff) === 0xfe) this.onReset('keyboard controller reset (0xFE to port 0x64)');
  }
}

const SCI_EN = 0x0001;
const SLP_EN = 1 << 13;

/**
 * ACPI fixed hardware: the PM1a event block (status, write 1 to clear;
 * enable) and control block (SCI_EN always set, so Linux finds ACPI mode on
 * already; SLP_EN with SLP_TYP = \_S5's value powers off), and the reset
 * register.
 */
export class AcpiPm implements PortDevice {
  #status = 0;
  #enable = 0;
  #control = SCI_EN;

  constructor(
    private readonly onPowerOff: (how: string) => void,
    private readonly onReset: (how: string) => void,
  ) {}

  /** PM1 status, enable and control, for a snapshot. */
  save(): { status: number; enable: number; control: number } {
    return { status: this.#status, enable: this.#enable, control: this.#control };
  }

  load(s: { status: number; enable: number; control: number }): void {
    this.#status = s.status;
    this.#enable = s.enable;
    this.#control = s.control;
  }

  // Byte-wise view of the 6 bytes at pm1aEvt: status (2), enable (2), control (2).
  #byte(off: number): number {
    const reg = off < 2 ? this.#status : off < 4 ? this.#enable : this.#control;
    return (reg >> ((off & 1) * 8)) & 0xff;
  }

  read(port: number, size: number): number {
    if (port === ACPI_PORTS.reset) return 0;
    let v = 0;
    for (let i = 0; i < size; i++) {
      const off = port - ACPI_PORTS.pm1aEvt + i;
      v |= (off < 6 ? this.#byte(off) : 0xff) << (8 * i);
    }
    return v >>> 0;
  }

  write(port: number, size: number, value: number): void {
    if (port === ACPI_PORTS.reset) {
      if ((value & 0xff) === ACPI_RESET_VALUE || value & 0x04) this.onReset(`ACPI reset register (0x${(value & 0xff).toString(16)} to port 0x${port.toString(16)})`);
      return;
    }
    let touchedControl = false;
    for (let i = 0; i < size; i++) {
      const off = port - ACPI_PORTS.pm1aEvt + i;
      const b = (value >>> (8 * i)) & 0xff;
      const shift = (off & 1) * 8;
      if (off < 2) this.#status &= ~(b << shift); // write 1 to clear
      else if (off < 4) this.#enable = (this.#enable & ~(0xff << shift)) | (b << shift);
      else if (off < 6) {
        this.#control = (this.#control & ~(0xff << shift)) | (b << shift);
        touchedControl = true;
      }
    }
    if (!touchedControl) return;
    this.#control |= SCI_EN;
    if (this.#control & SLP_EN) {
      const type = (this.#control >> 10) & 7;
      this.#control &= ~SLP_EN;
      if (type === SLP_TYP_S5) this.onPowerOff(`ACPI S5 (SLP_TYP ${type} | SLP_EN written to PM1a_CNT at port 0x${ACPI_PORTS.pm1aCnt.toString(16)})`);
    }
  }
}
