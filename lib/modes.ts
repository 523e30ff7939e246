// One call to put a vCPU into real, protected, paged or long mode.
import { argError } from './errors';
import { PageTableBuilder, type PageMapping, type PagingMode, type Range } from './paging';
import type { Sregs } from './regs';
import type { Vcpu } from './vcpu';
import { CR0, CR4, EFER, FLAT, SELECTOR, flatGdt, segmentFor } from './x86';

/** The x86 modes {@link setupMode} prepares: `paged` is 32-bit paging, `pae` 32-bit PAE paging. */
export type GuestMode = 'real' | 'protected' | 'paged' | 'pae' | 'long';

/** Where set-up structures go in guest-physical memory. */
export interface Layout {
  /** The GDT (32 bytes). Default 0x500, past the real-mode IVT and BIOS data area's first bytes. */
  gdt?: bigint | number;
  /** First page of the page tables, which grow upward a page at a time. Default 0x2000. */
  pageTables?: bigint | number;
}

/** Options for {@link setupMode}. */
export interface ModeOptions {
  mode: GuestMode;
  /** Where execution starts: a linear address (identity-mapped by default, so also physical). */
  entry: bigint | number;
  /** Initial stack pointer; left as it is when omitted. */
  stack?: bigint | number;
  layout?: Layout;
  /**
   * Page mappings for `paged`, `pae` and `long`. Default: every slot identity-
   * mapped (long mode uses 2 MiB pages where a slot is 2 MiB-aligned).
   */
  mappings?: PageMapping[];
  /** Ranges the set-up must not overwrite, e.g. `program.ranges` from a loader. */
  avoid?: Range[];
}

/** What {@link setupMode} placed where. */
export interface ModeSetup {
  mode: GuestMode;
  /** GDT address (not in real mode). */
  gdt?: bigint;
  /** Page table root, the CR3 value (paged, pae and long). */
  cr3?: bigint;
  /** First address past the page tables. */
  pageTablesEnd?: bigint;
}

const TWO_MB = 0x200000n;

function overlapCheck(start: bigint, end: bigint, what: string, avoid: Range[]): void {
  const hit = avoid.find((r) => start < r.end && end > r.start);
  if (hit) {
    throw argError(
      `the ${what} at 0x${start.toString(16)}-0x${end.toString(16)} would overlap ${hit.what ?? 'a reserved range'} at 0x${hit.start.toString(16)}-0x${hit.end.toString(16)}; move it with the layout option`,
    );
  }
}

function identityMappings(vcpu: Vcpu, paging: PagingMode): PageMapping[] {
  return vcpu.vm.slots.map((s) => {
    const big = paging !== 'paging32' && s.guestPhysAddr % TWO_MB === 0n && BigInt(s.size) % TWO_MB === 0n;
    return { virt: s.guestPhysAddr, phys: s.guestPhysAddr, size: s.size, pageSize: big ? 0x200000 : 0x1000 };
  });
}

/**
 * Sets a vCPU up to start in `mode` at `entry`: the CPUID this host's KVM
 * supports (so long mode is allowed on Intel and AMD), a flat GDT, page
 * tables for `paged` (32-bit paging, 4 KiB or 4 MiB pages), `pae` (4 KiB or
 * 2 MiB pages) and `long` (4 levels, 4 KiB, 2 MiB or 1 GiB pages), control
 * registers, EFER,
 * segments and registers. Call it before the first run.
 */
export function setupMode(vcpu: Vcpu, options: ModeOptions): ModeSetup {
  const { mode } = options;
  const entry = BigInt(options.entry);
  const avoid = options.avoid ?? [];
  const vm = vcpu.vm;
  vcpu.setCpuid(vm.kvm.getSupportedCpuid());
  const regs = { rip: entry, rflags: 2n, ...(options.stack === undefined ? {} : { rsp: BigInt(options.stack) }) };

  if (mode === 'real') {
    if (entry >= 0x100000n) throw argError(`a real-mode entry must be below 1 MiB, got 0x${entry.toString(16)}`);
    const base = entry & 0xf0000n;
    const seg = { base: 0n, selector: 0 };
    vcpu.setSregs({ cs: { base, selector: Number(base >> 4n) }, ds: seg, es: seg, ss: seg, cr0: vcpu.getSregs().cr0 & ~(CR0.PE | CR0.PG) });
    vcpu.setRegs({ ...regs, rip: entry - base });
    return { mode };
  }

  const gdt = BigInt(options.layout?.gdt ?? 0x500);
  const gdtBytes = flatGdt();
  overlapCheck(gdt, gdt + BigInt(gdtBytes.length), 'GDT', avoid);
  vm.memoryAt(gdt, gdtBytes.length).set(gdtBytes);

  const long = mode === 'long';
  const code = long ? segmentFor(SELECTOR.code64, FLAT.code64) : segmentFor(SELECTOR.code32, FLAT.code32);
  const data = segmentFor(SELECTOR.data, FLAT.data);
  const sregs: Partial<Sregs> & { cr0: bigint; cr4: bigint; efer: bigint } = {
    gdt: { base: gdt, limit: gdtBytes.length - 1 },
    cs: code,
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    cr0: CR0.PE | CR0.ET | CR0.NE,
    cr4: 0n,
    efer: 0n,
  };
  const setup: ModeSetup = { mode, gdt };

  if (mode !== 'protected') {
    const paging: PagingMode = long ? 'long' : mode === 'pae' ? 'pae' : 'paging32';
    const tables = new PageTableBuilder(paging, (gpa, n) => vm.memoryAt(gpa, n), options.layout?.pageTables ?? 0x2000, {
      avoid: [...avoid, { start: gdt, end: gdt + BigInt(gdtBytes.length), what: 'the GDT' }],
    });
    for (const m of options.mappings ?? identityMappings(vcpu, paging)) tables.map(m);
    sregs.cr3 = tables.root;
    sregs.cr0 |= CR0.PG;
    sregs.cr4 = paging === 'paging32' ? CR4.PSE : CR4.PAE;
    if (long) sregs.efer = EFER.LME | EFER.LMA;
    setup.cr3 = tables.root;
    setup.pageTablesEnd = tables.end;
  }
  vcpu.setSregs(sregs);
  vcpu.setRegs(regs);
  return setup;
}

/** The mode a vCPU is in, read from its control registers. */
export function modeOf(sregs: Sregs): GuestMode {
  if (!(sregs.cr0 & CR0.PE)) return 'real';
  if (sregs.efer & EFER.LMA) return 'long';
  if (!(sregs.cr0 & CR0.PG)) return 'protected';
  return sregs.cr4 & CR4.PAE ? 'pae' : 'paged';
}
