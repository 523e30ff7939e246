// Minimal ACPI tables: enough for Linux to find the CPUs and the IOAPIC
// (MADT), a power-off path (FADT's PM1a control block plus \_S5 in the
// DSDT) and a reset register. Without ACPI, `poweroff -f` on x86 ends in
// `hlt` with interrupts off, and with the in-kernel LAPIC that never exits
// to user space: the VMM would never learn that the guest is done.

/** I/O ports of the ACPI fixed hardware we emulate (where QEMU's PIIX4 puts them). */
export const ACPI_PORTS = {
  /** PM1a event block: status (16 bits) then enable (16 bits). */
  pm1aEvt: 0x600,
  /** PM1a control block (16 bits): SCI_EN, SLP_TYP (bits 10-12), SLP_EN (bit 13). */
  pm1aCnt: 0x604,
  /** The FADT's reset register (the PCI reset control register's port); writing {@link ACPI_RESET_VALUE} resets. */
  reset: 0xcf9,
} as const;
export const ACPI_RESET_VALUE = 0x06;
/** The SLP_TYP our \_S5 object gives: a PM1a_CNT write with SLP_EN and this type is power-off. */
export const SLP_TYP_S5 = 5;
/** The SCI's ISA IRQ (unused: we never raise an ACPI event, but the FADT must name one). */
export const SCI_IRQ = 9;
/** The CMOS register holding the century (FADT CENTURY field). */
export const CMOS_CENTURY = 0x32;

const LAPIC_BASE = 0xfee00000;
const IOAPIC_BASE = 0xfec00000;
const OEM_ID = 'NODKVM';
const OEM_TABLE_ID = 'NODEKVM ';

/** What {@link writeAcpiTables} needs to describe. */
export interface AcpiOptions {
  /** Number of vCPUs (LAPIC ids 0..n-1). */
  cpus: number;
  /** Guest-physical base of the tables: 16-byte aligned, in 0xE0000-0xFFFFF so a scan finds the RSDP too. */
  base?: number;
}

// The common 36-byte header; the checksum is set when the table is complete.
function header(sig: string, length: number, revision: number): Uint8Array {
  const t = new Uint8Array(length);
  const v = new DataView(t.buffer);
  ascii(t, 0, sig);
  v.setUint32(4, length, true);
  t[8] = revision;
  ascii(t, 10, OEM_ID);
  ascii(t, 16, OEM_TABLE_ID);
  v.setUint32(24, 1, true); // OEM revision
  ascii(t, 28, 'NKVM'); // creator id
  v.setUint32(32, 1, true); // creator revision
  return t;
}

function ascii(t: Uint8Array, at: number, s: string): void {
  for (let i = 0; i < s.length; i++) t[at + i] = s.charCodeAt(i);
}

// Sets byte `at` so that bytes [0, length) sum to 0 mod 256.
function checksum(t: Uint8Array, at: number, length = t.length): void {
  t[at] = 0;
  let sum = 0;
  for (let i = 0; i < length; i++) sum += t[i] ?? 0;
  t[at] = (256 - (sum & 0xff)) & 0xff;
}

// Generic Address Structure: a register in I/O space.
function gasIo(v: DataView, at: number, port: number, bits: number): void {
  v.setUint8(at, 1); // SystemIO
  v.setUint8(at + 1, bits);
  v.setUint8(at + 2, 0);
  v.setUint8(at + 3, bits === 8 ? 1 : bits === 16 ? 2 : 3); // access size
  v.setBigUint64(at + 4, BigInt(port), true);
}

/**
 * The DSDT's AML: `Name (_S5, Package () { 5, 5, 0, 0 })` at the root. Linux
 * reads SLP_TYPa/b from it to power off, and registers ACPI power-off only
 * if it exists.
 */
export function dsdtAml(): Uint8Array {
  const pkg = [0x04, 0x0a, SLP_TYP_S5, 0x0a, SLP_TYP_S5, 0x00, 0x00]; // NumElements, BytePrefix 5, BytePrefix 5, Zero, Zero
  return new Uint8Array([
    0x08, ...'_S5_'.split('').map((c) => c.charCodeAt(0)), // NameOp "_S5_"
    0x12, pkg.length + 1, ...pkg, // PackageOp, PkgLength (one byte, counts itself)
  ]);
}

/**
 * Writes RSDP, RSDT, XSDT, FADT, FACS, DSDT and MADT at `base` (default
 * 0xE0000) through `mem(gpa, length)` and returns the RSDP's address.
 */
export function writeAcpiTables(mem: (gpa: number, length: number) => Uint8Array, options: AcpiOptions): number {
  const base = options.base ?? 0xe0000;
  const at = { rsdp: base, facs: base + 0x40, rsdt: base + 0x80, xsdt: base + 0xc0, fadt: base + 0x100, madt: base + 0x200, dsdt: base + 0x400 };

  // DSDT
  const aml = dsdtAml();
  const dsdt = header('DSDT', 36 + aml.length, 2);
  dsdt.set(aml, 36);
  checksum(dsdt, 9);

  // FACS: required by a FADT that is not hardware-reduced; no checksum.
  const facs = new Uint8Array(64);
  ascii(facs, 0, 'FACS');
  new DataView(facs.buffer).setUint32(4, 64, true);
  facs[32] = 2; // version

  // FADT revision 3 (ACPI 2.0 layout, 244 bytes).
  const fadt = header('FACP', 244, 3);
  const f = new DataView(fadt.buffer);
  f.setUint32(36, at.facs, true);
  f.setUint32(40, at.dsdt, true);
  f.setUint16(46, SCI_IRQ, true);
  f.setUint32(48, 0, true); // SMI_CMD 0: always in ACPI mode, nothing to switch
  f.setUint32(56, ACPI_PORTS.pm1aEvt, true);
  f.setUint32(64, ACPI_PORTS.pm1aCnt, true);
  f.setUint8(88, 4); // PM1_EVT_LEN
  f.setUint8(89, 2); // PM1_CNT_LEN
  f.setUint8(108, CMOS_CENTURY);
  // IAPC_BOOT_ARCH: no legacy (LPC) devices, no 8042 (so Linux does not probe
  // the keyboard controller), VGA absent; the CMOS RTC is present (bit 5 clear).
  f.setUint16(109, 1 << 2, true);
  // Flags: WBINVD works, power and sleep buttons are not fixed features, RESET_REG_SUP.
  f.setUint32(112, (1 << 0) | (1 << 4) | (1 << 5) | (1 << 10), true);
  gasIo(f, 116, ACPI_PORTS.reset, 8);
  f.setUint8(128, ACPI_RESET_VALUE);
  f.setBigUint64(132, BigInt(at.facs), true);
  f.setBigUint64(140, BigInt(at.dsdt), true);
  checksum(fadt, 9);

  // MADT: one LAPIC per vCPU, the IOAPIC, and the SCI as a level-triggered,
  // active-high line (KVM's IOAPIC ignores polarity; say so rather than let
  // Linux assume the ISA default for SCI, active low).
  const entries: number[][] = [];
  for (let i = 0; i < options.cpus; i++) entries.push([0, 8, i, i, 1, 0, 0, 0]); // processor LAPIC, enabled
  entries.push([1, 12, 0, 0, ...le32(IOAPIC_BASE), ...le32(0)]); // IOAPIC id 0, GSI base 0
  entries.push([2, 10, 0, SCI_IRQ, ...le32(SCI_IRQ), 0x0d, 0x00]); // override: ISA 9 -> GSI 9, level, high
  const madtLen = 44 + entries.reduce((n, e) => n + e.length, 0);
  const madt = header('APIC', madtLen, 3);
  const m = new DataView(madt.buffer);
  m.setUint32(36, LAPIC_BASE, true);
  m.setUint32(40, 1, true); // PCAT_COMPAT: there are 8259s too (Linux masks them)
  let off = 44;
  for (const e of entries) {
    madt.set(e, off);
    off += e.length;
  }
  checksum(madt, 9);

  const tables = [at.fadt, at.madt];
  const rsdt = header('RSDT', 36 + 4 * tables.length, 1);
  tables.forEach((t, i) => new DataView(rsdt.buffer).setUint32(36 + 4 * i, t, true));
  checksum(rsdt, 9);
  const xsdt = header('XSDT', 36 + 8 * tables.length, 1);
  tables.forEach((t, i) => new DataView(xsdt.buffer).setBigUint64(36 + 8 * i, BigInt(t), true));
  checksum(xsdt, 9);

  // RSDP revision 2: the first 20 bytes have their checksum, all 36 another.
  const rsdp = new Uint8Array(36);
  const r = new DataView(rsdp.buffer);
  ascii(rsdp, 0, 'RSD PTR ');
  ascii(rsdp, 9, OEM_ID);
  rsdp[15] = 2;
  r.setUint32(16, at.rsdt, true);
  r.setUint32(20, 36, true);
  r.setBigUint64(24, BigInt(at.xsdt), true);
  checksum(rsdp, 8, 20);
  checksum(rsdp, 32, 36);

  const put = (gpa: number, t: Uint8Array): void => mem(gpa, t.length).set(t);
  put(at.rsdp, rsdp);
  put(at.facs, facs);
  put(at.rsdt, rsdt);
  put(at.xsdt, xsdt);
  put(at.fadt, fadt);
  put(at.madt, madt);
  put(at.dsdt, dsdt);
  return at.rsdp;
}

function le32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}
