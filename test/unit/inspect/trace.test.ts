import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leaves, parseTrace, rebuildMmuTree, tables, type MmuEvent } from '../../../lib';

// Lines as the 6.1 kernel prints them (TP_printk formats of kvmmmu), with
// SPTE values seen on kvm_amd: non-leaf 0x...827, 4 KiB leaf 0x...e67,
// 2 MiB leaf 0x...ee7 (PS); bit 11 is KVM's present bit.
const TRACE = [
  '# tracer: nop',
  '            node-162     [000] .....    12.345678: kvm_mmu_get_page: sp gen 0 gfn 0 l4 8-byte q0 direct wux nxe ad root 0 sync new',
  '            node-162     [000] .....    12.345679: kvm_tdp_mmu_spte_changed: as id 0 gfn 0 level 4 old_spte 0 new_spte 10735827',
  '            node-162     [000] .....    12.345680: kvm_tdp_mmu_spte_changed: as id 0 gfn 0 level 3 old_spte 0 new_spte 10734827',
  '            node-162     [000] .....    12.345681: kvm_tdp_mmu_spte_changed: as id 0 gfn 0 level 2 old_spte 0 new_spte 10733827',
  '            node-162     [000] .....    12.345682: kvm_tdp_mmu_spte_changed: as id 0 gfn 10 level 1 old_spte 0 new_spte c335e67',
  '            node-162     [000] .....    12.345683: kvm_tdp_mmu_spte_changed: as id 0 gfn 200 level 2 old_spte 0 new_spte c400ee7',
  '            node-162     [000] .....    12.345684: kvm_tdp_mmu_spte_changed: as id 0 gfn 11 level 1 old_spte 0 new_spte 800000000c336e67',
  '            node-162     [000] .....    12.345685: kvm_tdp_mmu_spte_changed: as id 0 gfn 11 level 1 old_spte 800000000c336e67 new_spte 5a0',
  '            node-162     [000] .....    12.345686: kvm_mmu_set_spte: gfn 10 spte 600000000c335e77 (rwxu) level 1 at 10733080',
  '            node-162     [000] .....    12.345687: kvm_mmu_spte_requested: gfn 10 pfn c335 level 1',
];

describe('kvmmmu trace parsing', () => {
  it('reads each event by its print format', () => {
    const ev = parseTrace(TRACE);
    expect(ev).toHaveLength(10);
    expect(ev[0]).toEqual({ event: 'kvm_mmu_get_page', pid: 162, fields: { gen: '0', gfn: '0', level: '4', gpte_bytes: '8', quadrant: '0', direct: 'direct', created: 'new' } });
    expect(ev[1]?.fields).toMatchObject({ as_id: '0', gfn: '0', level: '4', new_spte: '10735827' });
    expect(ev[8]?.fields).toEqual({ gfn: '10', spte: '600000000c335e77', access: 'rwxu', level: '1', at: '10733080' });
    expect(ev[9]?.fields).toEqual({ gfn: '10', pfn: 'c335', level: '1' });
  });

  it('rebuilds the TDP tree: last value wins, removed entries go, links carry the child frame', () => {
    const root = rebuildMmuTree(parseTrace(TRACE), 'npt').tree;
    expect(tables(root).map((t) => [t.level, t.pfn])).toEqual([[4, undefined], [3, 0x10735n], [2, 0x10734n], [1, 0x10733n]]);
    expect(leaves(root).map((l) => [l.gfn, l.level, l.pfn, l.writable, l.executable])).toEqual([
      [0x10n, 1, 0xc335n, true, true],
      [0x200n, 2, 0xc400n, true, true],
    ]);
    // gfn 0x11 was set, then removed (REMOVED_SPTE has no present bit).
    expect(leaves(root).some((l) => l.gfn === 0x11n)).toBe(false);
  });
});

describe('legacy MMU over NPT', () => {
  // kvm.tdp_mmu=0 on kvm_amd: tables from get_page, leaves from set_spte
  // with the physical address of the SPTE itself.
  const LEGACY = [
    '  node-162 [000] ..... 1.0: kvm_mmu_get_page: sp gen 0 gfn 0 l4 8-byte q0 direct wux nxe ad root 0 sync new',
    '  node-162 [000] ..... 1.1: kvm_mmu_get_page: sp gen 0 gfn 0 l3 8-byte q0 direct wux nxe ad root 0 sync new',
    '  node-162 [000] ..... 1.2: kvm_mmu_get_page: sp gen 0 gfn 0 l2 8-byte q0 direct wux nxe ad root 0 sync new',
    '  node-162 [000] ..... 1.3: kvm_mmu_get_page: sp gen 0 gfn 20000 l1 8-byte q0 direct wux nxe ad root 0 sync new',
    '  node-162 [000] ..... 1.4: kvm_mmu_set_spte: gfn 20000 spte c524e67 (rwxu) level 1 at 1076e000',
    '  node-162 [000] ..... 1.5: kvm_mmu_set_spte: gfn 20005 spte c523e67 (rwxu) level 1 at 1076e028',
  ];

  it('places leaves by their SPTE address and links tables by geometry, marked inferred', () => {
    const { tree, mmu } = rebuildMmuTree(parseTrace(LEGACY), 'npt');
    expect(mmu).toBe('legacy');
    expect(tables(tree).map((t) => [t.level, t.gfn, t.pfn])).toEqual([
      [4, 0n, undefined],
      [3, 0n, undefined],
      [2, 0n, undefined],
      [1, 0x20000n, 0x1076en],
    ]);
    expect(leaves(tree).map((l) => [l.gfn, l.pfn])).toEqual([
      [0x20000n, 0xc524n],
      [0x20005n, 0xc523n],
    ]);
    expect(tables(tree)[2]!.spt[256]).toMatchObject({ kind: 'table', inferred: true });
  });

  it('refuses shadow paging, whose tables follow guest-virtual addresses', () => {
    const shadow = ['  node-1 [000] ..... 1.0: kvm_mmu_get_page: sp gen 0 gfn 2 l4 8-byte q0 wux nxe ad root 0 sync new'];
    expect(() => rebuildMmuTree(parseTrace(shadow), 'npt')).toThrow(/shadow paging/);
  });

  it('notices an SPTE whose address disagrees with the geometry', () => {
    const bad = [LEGACY[3]!, '  node-162 [000] ..... 1.4: kvm_mmu_set_spte: gfn 20000 spte c524e67 (rwxu) level 1 at 1076e008'];
    expect(() => rebuildMmuTree(parseTrace(bad), 'npt')).toThrow(/at index 1, where its level puts it at 0/);
  });
});

describe('SPTE permission bits', () => {
  const leaf = (spte: string) => [
    `  node-1 [000] ..... 1.0: kvm_tdp_mmu_spte_changed: as id 0 gfn 10 level 1 old_spte 0 new_spte ${spte}`,
  ];
  it('reads EPT leaves as R=bit 0, W=bit 1, X=bit 2', () => {
    // present (bit 11) | D | A | WB memory type | W | R, no X
    const [l] = leaves(rebuildMmuTree(parseTrace(leaf('c335b33')), 'ept').tree);
    expect(l).toMatchObject({ pfn: 0xc335n, writable: true, executable: false });
  });
  it('reads NPT leaves as x86 PTEs: RW=bit 1, no-execute=bit 63', () => {
    const [l] = leaves(rebuildMmuTree(parseTrace(leaf('800000000c335a65')), 'npt').tree);
    expect(l).toMatchObject({ pfn: 0xc335n, writable: false, executable: false });
  });
});

describe('tracing input from anywhere', () => {
  const typed = (e: unknown) =>
    e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && /^(ERR_|E[A-Z]+$)/.test((e as unknown as { code: string }).code);

  it('takes an event named after an Object.prototype member as one it does not know', () => {
    for (const event of ['toString', 'constructor', 'hasOwnProperty']) {
      expect(rebuildMmuTree([{ event, pid: 1, fields: {} }], 'ept').mmu).toBeDefined();
    }
    expect(parseTrace([' qemu-1 [000] ....: 1.0: kvm_toString: gfn 1'])).toEqual([]);
  });

  it('answers any junk given to parseTrace and rebuildMmuTree with a result or a typed error', () => {
    const event = fc.record({
      // Object.prototype's names too: an event named "toString" once found an inherited function.
      event: fc.oneof(
        fc.constantFrom('kvm_tdp_mmu_spte_changed', 'kvm_mmu_set_spte', 'kvm_mmu_get_page', 'toString', '__proto__', 'constructor'),
        fc.anything(),
      ),
      pid: fc.anything(),
      fields: fc.oneof(fc.dictionary(fc.constantFrom('gfn', 'level', 'new_spte', 'spte', 'at', 'direct'), fc.oneof(fc.stringMatching(/^[0-9a-f]{1,12}$/), fc.string(), fc.anything())), fc.anything()),
    });
    fc.assert(
      fc.property(fc.oneof(fc.array(event, { maxLength: 5 }), fc.anything()), fc.oneof(fc.constantFrom('ept', 'npt'), fc.anything()), (events, format) => {
        try {
          rebuildMmuTree(events as MmuEvent[], format as 'ept');
        } catch (e) {
          if (!typed(e)) throw e;
        }
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.anything(), (lines) => {
        try {
          parseTrace(lines as string[]);
        } catch (e) {
          if (!typed(e)) throw e;
        }
      }),
      { numRuns: 300 },
    );
  });
});
