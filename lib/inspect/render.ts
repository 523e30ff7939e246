// Pictures of a kvm_mmu_page tree: text in the style of the classic
// diagram, and SVG to open in a browser.
import { validateMmuTree, type MmuPage, type SptLeaf } from './ept';
import { own, validateOptions, validateString } from '../core/validate';

function renderArgs(root: unknown, options: unknown): RenderOptions {
  validateMmuTree(root, 'root');
  const o = validateOptions(options, 'options', ['title']);
  return own(o, 'title') === undefined ? {} : { title: validateString(o.title, 'options.title') };
}

const hex = (v: bigint | number) => `0x${v.toString(16)}`;
const SIZE: Record<number, string> = { 1: '4K', 2: '2M', 3: '1G' };

/** Options for the renderers. */
export interface RenderOptions {
  /** A first line saying where the tree came from (trace, geometry...). */
  title?: string;
}

// The non-empty entries of a table, with their indices.
function usedEntries(p: MmuPage) {
  return p.spt.map((e, i) => [i, e] as const).filter((x): x is readonly [number, NonNullable<(typeof x)[1]>] => x[1] !== null);
}

function pageLabel(p: MmuPage): string {
  return `kvm_mmu_page level ${p.level}${p.parentPtes.length ? '' : ' (root)'}  gfn ${hex(p.gfn)}..${hex(p.gfn + p.gfnCount - 1n)}  spt@pfn ${p.pfn === undefined ? '?' : hex(p.pfn)}`;
}

function leafLabel(l: SptLeaf): string {
  const gpa = l.gfn << 12n;
  const hpa = l.pfn === undefined || l.pfn === null ? '?' : hex(l.pfn << 12n);
  const perms = l.writable === undefined ? '' : `  ${'r'}${l.writable ? 'w' : '-'}${l.executable ? 'x' : '-'}`;
  return `${SIZE[l.level] ?? `L${l.level}`} leaf  gpa ${hex(gpa)} -> hpa ${hpa}${perms}`;
}

/** The tree as indented text: tables, their non-empty entries, links and leaves (GPA -> HPA). */
export function renderMmuText(root: MmuPage, options: RenderOptions = {}): string {
  options = renderArgs(root, options);
  const lines: string[] = options.title ? [options.title] : [];
  const walk = (p: MmuPage, prefix: string, self: string) => {
    const used = usedEntries(p);
    lines.push(`${self}${pageLabel(p)}  (${used.length}/512 entries)`);
    used.forEach(([i, e], n) => {
      const last = n === used.length - 1;
      const branch = `${prefix}${last ? '└─' : '├─'} spt[${i}] `;
      const next = `${prefix}${last ? '   ' : '│  '}`;
      if (e.kind === 'table') walk(e.child, next, `${branch}${e.inferred ? '-> (inferred) ' : '-> '}`);
      else lines.push(`${branch}${leafLabel(e)}`);
    });
  };
  walk(root, '', '');
  return `${lines.join('\n')}\n`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * The tree as a standalone SVG: one box per 512-entry table, columns by
 * level from the root on the left, each link drawn from its entry to the
 * child table, leaves listed in their table with GPA -> HPA.
 */
export function renderMmuSvg(root: MmuPage, options: RenderOptions = {}): string {
  options = renderArgs(root, options);
  const colWidth = 420;
  const rowHeight = 16;
  const maxRows = 24;
  const boxes: { page: MmuPage; x: number; y: number; rows: string[]; rowOf: Map<number, number> }[] = [];
  const edges: { from: { x: number; y: number }; to: MmuPage }[] = [];
  let cursor = options.title ? 40 : 10;
  const place = (p: MmuPage) => {
    const used = usedEntries(p);
    const shown = used.slice(0, maxRows);
    const rows = shown.map(([i, e]) =>
      e.kind === 'table'
        ? `spt[${i}] -> level ${e.child.level} table${e.child.pfn === undefined ? '' : ` @ pfn ${hex(e.child.pfn)}`}${e.inferred ? ' (inferred)' : ''}`
        : `spt[${i}] ${leafLabel(e)}`,
    );
    if (used.length > shown.length) rows.push(`… ${used.length - shown.length} more entries`);
    const box = { page: p, x: 10 + (4 - p.level) * colWidth, y: cursor, rows, rowOf: new Map(shown.map(([i], r) => [i, r])) };
    boxes.push(box);
    cursor += (rows.length + 2) * rowHeight + 14;
    for (const [i, e] of shown) {
      if (e.kind !== 'table') continue;
      edges.push({ from: { x: box.x + colWidth - 40, y: box.y + (box.rowOf.get(i)! + 2) * rowHeight - 4 }, to: e.child });
      place(e.child);
    }
  };
  place(root);
  const at = new Map(boxes.map((b) => [b.page, b]));
  const width = 10 + 4 * colWidth;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${cursor + 10}" font-family="monospace" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  if (options.title) parts.push(`<text x="10" y="24" font-size="14" font-weight="bold">${esc(options.title)}</text>`);
  for (const b of boxes) {
    const h = (b.rows.length + 1) * rowHeight + 8;
    parts.push(`<rect x="${b.x}" y="${b.y}" width="${colWidth - 40}" height="${h}" fill="#f4f7ff" stroke="#3557a0"/>`);
    parts.push(`<text x="${b.x + 6}" y="${b.y + rowHeight - 2}" font-weight="bold">${esc(`L${b.page.level} gfn ${hex(b.page.gfn)} pfn ${b.page.pfn === undefined ? '?' : hex(b.page.pfn)}`)}</text>`);
    b.rows.forEach((r, i) => parts.push(`<text x="${b.x + 6}" y="${b.y + (i + 2) * rowHeight - 2}">${esc(r)}</text>`));
  }
  for (const e of edges) {
    const child = at.get(e.to)!;
    parts.push(`<path d="M${e.from.x} ${e.from.y} C${e.from.x + 30} ${e.from.y}, ${child.x - 30} ${child.y + 8}, ${child.x} ${child.y + 8}" fill="none" stroke="#c0392b"/>`);
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
