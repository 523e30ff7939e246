// Runs a guest that touches a few pages, records how KVM's TDP MMU mapped
// them (kvmmmu tracepoints; needs root), and draws the EPT/NPT tree as text
// and SVG. Without tracing it draws the tree the geometry predicts.
//   npx tsx examples/ept-tree.ts [out-dir] [--huge]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MmuTrace, describeKvm, predictTree, probeKvm, rebuildMmuTree, renderMmuSvg, renderMmuText, traceUnavailable, type MmuPage,
} from 'node-kvm';
import { DATA, Toucher } from './toucher';

/** Pages the guest writes, as offsets into its data slot: across three 2 MiB regions. */
export const OFFSETS = [0x0, 0x1000, 0x7000, 0x200000, 0x201000, 0x5ff000];

export interface EptPicture {
  tree: MmuPage;
  source: string;
  text: string;
  svg: string;
}

/** Runs the guest and draws its tree; `huge` backs the data with transparent huge pages. */
export function drawEptTree(huge = false): EptPicture {
  const probe = probeKvm();
  const why = traceUnavailable();
  const trace = why ? undefined : MmuTrace.start();
  let tree: MmuPage;
  let source: string;
  {
    using t = new Toucher({ hugePages: huge, dataSize: 0x600000 });
    t.touch(OFFSETS);
    if (trace) {
      const rebuilt = rebuildMmuTree(trace.stop(), probe.vendorModule === 'kvm_intel' ? 'ept' : 'npt');
      tree = rebuilt.tree;
      source =
        rebuilt.mmu === 'tdp'
          ? `source: kvmmmu:kvm_tdp_mmu_spte_changed, traced (${describeKvm(probe)})`
          : `source: kvmmmu:kvm_mmu_get_page + kvm_mmu_set_spte, traced, links inferred (${describeKvm(probe)})`;
    } else {
      tree = predictTree(OFFSETS.map((o) => BigInt((DATA + o) / 4096)), huge ? 2 : 1);
      source = `source: geometry only, predicted for the touched pages (${why})`;
    }
  }
  const title = `EPT/NPT tree, ${huge ? '2 MiB' : '4 KiB'} host backing; ${source}`;
  return { tree, source, text: renderMmuText(tree, { title }), svg: renderMmuSvg(tree, { title }) };
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const out = args.find((a) => !a.startsWith('--')) ?? '.';
  const huge = args.includes('--huge');
  try {
    const pic = drawEptTree(huge);
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'ept-tree.txt'), pic.text);
    writeFileSync(join(out, 'ept-tree.svg'), pic.svg);
    process.stdout.write(pic.text);
    console.log(`wrote ${join(out, 'ept-tree.txt')} and ${join(out, 'ept-tree.svg')}`);
  } catch (e) {
    // No usable /dev/kvm, say: the error names what is missing.
    console.error(`ept-tree: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
