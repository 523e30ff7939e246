// One call to put a vCPU into real, protected, paged or long mode.
import { argError } from '../core/errors';
import { PageTableBuilder, validateRanges, type PageMapping, type PagingMode, type Range } from './paging';
import type { Sregs } from '../core/regs';
import { Vcpu } from '../core/vcpu';
import { own, validateArray, validateInstance, validateObject, validateOneOf, validateOptions, validateU64 } from '../core/validate';
import { KvmError } from '../core/errors';
import { constants as osConstants } from 'node:os';
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
const MODES: readonly GuestMode[] = ['real', 'protected', 'paged', 'pae', 'long'];

// A checked copy of the options: addresses as bigints, modes' limits applied.
function validateModeOptions(options: unknown): ModeOptions {
  const o = validateObject(options, 'options', ['mode', 'entry', 'stack', 'layout', 'mappings', 'avoid']);
  const mode = validateOneOf(own(o, 'mode'), 'options.mode', MODES);
  // Real mode starts below 1 MiB; 32-bit modes have 32-bit rip and rsp.
  const max = mode === 'real' ? 0xfffffn : mode === 'long' ? undefined : 0xffffffffn;
  const out: ModeOptions = { mode, entry: validateU64(own(o, 'entry'), 'options.entry', max) };
  if (own(o, 'stack') !== undefined) out.stack = validateU64(o.stack, 'options.stack', mode === 'real' ? 0xffffn : max);
  if (own(o, 'layout') !== undefined) {
    const l = validateObject(o.layout, 'options.layout', ['gdt', 'pageTables']);
    out.layout = {};
    if (own(l, 'gdt') !== undefined) out.layout.gdt = validateU64(l.gdt, 'options.layout.gdt', (1n << 64n) - 32n);
    if (own(l, 'pageTables') !== undefined) out.layout.pageTables = validateU64(l.pageTables, 'options.layout.pageTables');
  }
  if (own(o, 'mappings') !== undefined) out.mappings = validateArray(o.mappings, 'options.mappings') as PageMapping[];
  if (own(o, 'avoid') !== undefined) out.avoid = validateRanges(o.avoid, 'options.avoid');
  return out;
}

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
  validateInstance(vcpu, 'vcpu', Vcpu);
  options = validateModeOptions(options);
  const { mode } = options;
  const entry = BigInt(options.entry);
  const avoid = options.avoid ?? [];
  const vm = vcpu.vm;
  vcpu.setCpuid(vm.kvm.getSupportedCpuid());
  const regs = { rip: entry, rflags: 2n, ...(options.stack === undefined ? {} : { rsp: BigInt(options.stack) }) };

  if (mode === 'real') {
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
  checkAccepted(vcpu, mode, sregs);
  vcpu.setRegs(regs);
  return setup;
}

// KVM_SET_SREGS can succeed and still drop bits a backend cannot run: PVM
// clears CR0.PG for 32-bit and PAE paging, and the guest then dies on its
// first instruction. Read back what the mode depends on.
function checkAccepted(vcpu: Vcpu, mode: GuestMode, wanted: { cr0: bigint; cr4: bigint; efer: bigint }): void {
  const got = vcpu.getSregs();
  const checks: [string, bigint, bigint][] = [
    ['CR0', CR0.PE | CR0.PG, got.cr0],
    ['CR4', CR4.PAE | CR4.PSE, got.cr4],
    ['EFER', EFER.LME | EFER.LMA, got.efer],
  ];
  const wantedBy: Record<string, bigint> = { CR0: wanted.cr0, CR4: wanted.cr4, EFER: wanted.efer };
  for (const [reg, mask, value] of checks) {
    const want = (wantedBy[reg] ?? 0n) & mask;
    if ((value & mask) === want) continue;
    const paging = mode === 'paged' || mode === 'pae';
    throw new KvmError(
      osConstants.errno.ENOTSUP,
      'KVM_SET_SREGS',
      `${mode} mode: KVM accepted ${reg} = 0x${(wantedBy[reg] ?? 0n).toString(16)} but kept 0x${value.toString(16)}, so this KVM cannot run ${mode} mode` +
        (paging ? ' (KVM\'s PVM backend runs paging only in long mode: use long mode, or a KVM with VT-x/AMD-V such as the node-kvm sandbox)' : ''),
    );
  }
}

/** The mode a vCPU is in, read from its control registers. */
export function modeOf(sregs: Sregs): GuestMode {
  const o = validateObject(sregs, 'sregs');
  sregs = { cr0: validateU64(own(o, 'cr0'), 'sregs.cr0'), cr4: validateU64(own(o, 'cr4'), 'sregs.cr4'), efer: validateU64(own(o, 'efer'), 'sregs.efer') } as Sregs;
  if (!(sregs.cr0 & CR0.PE)) return 'real';
  if (sregs.efer & EFER.LMA) return 'long';
  if (!(sregs.cr0 & CR0.PG)) return 'protected';
  return sregs.cr4 & CR4.PAE ? 'pae' : 'paged';
}
