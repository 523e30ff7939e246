// The second-level table KVM really built, rebuilt from the kvmmmu
// tracepoints of this process's vCPU threads (root and tracefs needed).
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { KvmError } from '../core/errors';
import { invalidArgValue, validateArray, validateObject, validateOneOf, validateString } from '../core/validate';
import { childAt, indexIn, newMmuPage, type MmuPage, type SptLeaf } from './ept';

/** Why tracing cannot be used here, or undefined when it can. */
export function traceUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'reading kvmmmu tracepoints needs root (tracefs is root-only)';
  if (!tracefsRoot()) return 'tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)';
  if (!existsSync(`${tracefsRoot()}/events/kvmmmu`)) return 'this kernel has no kvmmmu tracepoints (is kvm loaded?)';
  return undefined;
}

function tracefsRoot(): string | undefined {
  return ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'].find((d) => existsSync(`${d}/instances`));
}

/** One kvmmmu event, parsed from the trace. */
export interface MmuEvent {
  event: string;
  pid: number;
  fields: Record<string, string>;
}

const EVENTS = ['kvm_tdp_mmu_spte_changed', 'kvm_mmu_get_page', 'kvm_mmu_set_spte', 'kvm_mmu_spte_requested'];
let instances = 0;

/**
 * Records kvmmmu events of this process's threads (and the vCPU threads it
 * starts later) in a private tracefs instance, so the global trace is left
 * alone. Record one VM at a time: the events do not say which VM.
 *
 * An instance keeps tracing into its kernel buffer until it is removed, so
 * none may outlive the process: those not stopped are removed when the
 * process exits (normally, by `process.exit()` or an uncaught exception) and
 * on SIGINT, SIGTERM and SIGHUP when nothing else listens for them (the
 * signal is then re-raised, so the process dies of it as it would have).
 * A process killed outright (SIGKILL) leaves its instances behind; every
 * {@link MmuTrace.start} removes those whose process no longer exists.
 */
export class MmuTrace {
  readonly #dir: string;
  #stopped = false;
  #lines: string[] = [];

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** Starts recording; throws with the reason when tracing is unavailable. */
  static start(): MmuTrace {
    const why = traceUnavailable();
    if (why) {
      const errno = process.getuid?.() !== 0 ? osConstants.errno.EPERM : osConstants.errno.ENOENT;
      throw new KvmError(errno, 'tracefs', `cannot trace the MMU: ${why}`);
    }
    sweepStaleInstances(`${tracefsRoot()}/instances`);
    const dir = `${tracefsRoot()}/instances/node-kvm-${process.pid}-${instances++}`;
    mkdirSync(dir);
    track(dir);
    const t = new MmuTrace(dir);
    try {
      writeFileSync(`${dir}/buffer_size_kb`, '16384');
      // This process and every thread it creates from now on (event-fork).
      const tids = readdirSync('/proc/self/task');
      writeFileSync(`${dir}/set_event_pid`, tids.join(' '));
      writeFileSync(`${dir}/options/event-fork`, '1');
      for (const e of EVENTS) {
        if (existsSync(`${dir}/events/kvmmmu/${e}`)) writeFileSync(`${dir}/events/kvmmmu/${e}/enable`, '1');
      }
      writeFileSync(`${dir}/tracing_on`, '1');
    } catch (e) {
      try {
        removeInstance(dir);
        untrack(dir);
      } catch {
        // Still tracked: removed again at exit. Report the first error.
      }
      throw e;
    }
    return t;
  }

  /** Stops recording and returns the events, oldest first. Idempotent. */
  stop(): MmuEvent[] {
    if (!this.#stopped) {
      writeFileSync(`${this.#dir}/tracing_on`, '0');
      this.#lines = readFileSync(`${this.#dir}/trace`, 'utf8').split('\n');
      removeInstance(this.#dir);
      untrack(this.#dir);
      this.#stopped = true;
    }
    return parseTrace(this.#lines);
  }

  /** Same as {@link MmuTrace.stop}, for `using`. */
  [Symbol.dispose](): void {
    this.stop();
  }
}

// ----------------------------------------------- instances outliving us

// Instances of this process not stopped yet. Listeners are registered while
// there are any, so a process that never traces keeps Node's defaults.
const live = new Set<string>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const SIGNAL_NUMBERS: Record<(typeof SIGNALS)[number], number> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

function track(dir: string): void {
  if (live.size === 0) {
    // 'exit' also runs after an uncaught exception; its listeners must be synchronous.
    process.on('exit', removeLive);
    for (const sig of SIGNALS) process.on(sig, onSignal);
  }
  live.add(dir);
}

function untrack(dir: string): void {
  live.delete(dir);
  if (live.size === 0) {
    process.removeListener('exit', removeLive);
    for (const sig of SIGNALS) process.removeListener(sig, onSignal);
  }
}

function removeLive(): void {
  for (const dir of [...live]) {
    try {
      removeInstance(dir);
    } catch {
      // Best effort at exit: one stuck instance must not keep the others.
    }
    untrack(dir);
  }
}

// Our listener keeps Node from dying of the signal. If it is the only one,
// do what Node would have done after removing the instances: die of the
// signal (untrack() removed the listeners, so the default action is back).
// Other listeners own the signal; if they exit, 'exit' removes the instances.
function onSignal(sig: NodeJS.Signals): void {
  if (process.listenerCount(sig) > 1) return;
  removeLive();
  process.kill(process.pid, sig);
  // Not reached: a signal sent to oneself is delivered before kill() returns.
  process.exit(128 + SIGNAL_NUMBERS[sig as (typeof SIGNALS)[number]]);
}

/** Stops an instance's tracing and events, then removes it. */
function removeInstance(dir: string): void {
  if (!existsSync(dir)) return;
  writeFileSync(`${dir}/tracing_on`, '0');
  // Every event of the instance, whoever enabled it.
  writeFileSync(`${dir}/events/enable`, '0');
  rmdirSync(dir);
}

/**
 * Removes `node-kvm-<pid>-<n>` instances left by processes that no longer
 * exist (killed by SIGKILL, or by a crash). A pid is taken as alive when
 * /proc/<pid> exists: an instance whose pid was reused by another process
 * stays until that process ends, and one made in another pid namespace
 * sharing this tracefs could be taken for stale. Instances named with our
 * own pid that we did not create come from an earlier process that had it.
 */
function sweepStaleInstances(parent: string): void {
  for (const name of readdirSync(parent)) {
    const m = /^node-kvm-(\d+)-\d+$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const dir = `${parent}/${name}`;
    const stale = pid === process.pid ? !live.has(dir) : !existsSync(`/proc/${pid}`);
    if (!stale) continue;
    try {
      removeInstance(dir);
    } catch {
      // Another process sweeping at the same time, or still open: next time.
    }
  }
}

// "<task>-<pid> [cpu] flags time: event: details"
const LINE = /^\s*.+?-(\d+)\s+\[\d+\].*?:\s+(kvm_\w+):\s+(.*)$/;

// The details of each event, by its TP_printk format.
const FORMATS: Record<string, [RegExp, string[]]> = {
  kvm_tdp_mmu_spte_changed: [
    /^as id (\d+) gfn ([0-9a-f]+) level (\d+) old_spte ([0-9a-f]+) new_spte ([0-9a-f]+)/,
    ['as_id', 'gfn', 'level', 'old_spte', 'new_spte'],
  ],
  kvm_mmu_set_spte: [/^gfn ([0-9a-f]+) spte ([0-9a-f]+) \((\S*)\) level (\d+) at ([0-9a-f]+)/, ['gfn', 'spte', 'access', 'level', 'at']],
  kvm_mmu_spte_requested: [/^gfn ([0-9a-f]+) pfn ([0-9a-f]+) level (\d+)/, ['gfn', 'pfn', 'level']],
  kvm_mmu_get_page: [
    /^sp gen (\d+) gfn ([0-9a-f]+) l(\d+) (\d+)-byte q(\d+)( direct)? .*\b(new|existing)$/,
    ['gen', 'gfn', 'level', 'gpte_bytes', 'quadrant', 'direct', 'created'],
  ],
};

/** Parses tracefs text lines of kvmmmu events (others are skipped); numbers stay as printed (hex for gfn, spte, pfn). */
export function parseTrace(lines: string[]): MmuEvent[] {
  validateArray(lines, 'lines').forEach((l, i) => validateString(l, `lines[${i}]`));
  const out: MmuEvent[] = [];
  for (const line of lines) {
    const m = LINE.exec(line);
    if (m === null || !Object.hasOwn(FORMATS, m[2]!)) continue;
    const format = FORMATS[m[2]!]!;
    const d = format[0].exec(m[3]!);
    if (!d) continue;
    const fields: Record<string, string> = {};
    format[1].forEach((name, i) => {
      fields[name] = (d[i + 1] ?? '').trim();
    });
    out.push({ event: m[2]!, pid: Number(m[1]), fields });
  }
  return out;
}

/** How to read SPTE bits: EPT (Intel) or the x86 page-table format of NPT (AMD). */
export type SpteFormat = 'ept' | 'npt';

const PRESENT = 1n << 11n; // SPTE_MMU_PRESENT_MASK, KVM's software bit
const PS = 1n << 7n;
const PFN_MASK = ((1n << 52n) - 1n) & ~0xfffn;

/** Which MMU built a traced tree, and how its links are known. */
export interface RebuiltTree {
  tree: MmuPage;
  /**
   * `tdp`: KVM's TDP MMU; every link comes from a traced SPTE.
   * `legacy`: the legacy MMU over EPT/NPT; leaves and their tables' frames
   * come from `kvm_mmu_set_spte`, links between tables from geometry
   * (no tracepoint records them).
   */
  mmu: 'tdp' | 'legacy';
}

/**
 * Rebuilds the second-level table tree KVM built, from the events of
 * {@link MmuTrace}: with the TDP MMU from `kvm_tdp_mmu_spte_changed` (last
 * value wins, non-present entries dropped, each link holding its child's
 * frame); with the legacy MMU over EPT/NPT from `kvm_mmu_get_page` and
 * `kvm_mmu_set_spte`. Shadow paging is refused: its tables follow the
 * guest's virtual addresses, not guest-physical ones.
 */
export function rebuildMmuTree(events: MmuEvent[], format: SpteFormat): RebuiltTree {
  validateArray(events, 'events').forEach(validateEvent);
  validateOneOf(format, 'format', ['ept', 'npt'] as const);
  if (events.some((e) => e.event === 'kvm_tdp_mmu_spte_changed')) return { tree: rebuildTdp(events, format), mmu: 'tdp' };
  if (events.some((e) => e.event === 'kvm_mmu_get_page' && e.fields.direct !== 'direct')) {
    throw invalidArgValue('events', `${events.length} events`, 'come from shadow paging, whose tables map guest-virtual addresses; there is no guest-physical tree to rebuild');
  }
  return { tree: rebuildLegacy(events, format), mmu: 'legacy' };
}

const hexBig = (s: string | undefined) => BigInt(`0x${s ?? '0'}`);

// The fields each event needs, and how they are written (as parseTrace leaves them).
const HEX = /^[0-9a-f]+$/;
const DEC = /^[0-9]+$/;
const NEEDS: Record<string, [string, RegExp][]> = {
  kvm_tdp_mmu_spte_changed: [['gfn', HEX], ['level', DEC], ['new_spte', HEX]],
  kvm_mmu_set_spte: [['gfn', HEX], ['level', DEC], ['spte', HEX], ['at', HEX]],
  kvm_mmu_get_page: [['gfn', HEX], ['level', DEC]],
};

function validateEvent(value: unknown, i: number): void {
  const e = validateObject(value, `events[${i}]`);
  const name = validateString(e.event, `events[${i}].event`);
  const fields = validateObject(e.fields, `events[${i}].fields`);
  // Own keys only: an event named "toString" needs nothing.
  for (const [field, form] of Object.hasOwn(NEEDS, name) ? NEEDS[name]! : []) {
    const v = fields[field];
    if (typeof v !== 'string' || !form.test(v)) {
      throw invalidArgValue(`events[${i}].fields.${field}`, v, `must be ${form === HEX ? 'hexadecimal' : 'decimal'} digits, as parseTrace() gives it`);
    }
    if (field === 'level' && !(Number(v) >= 1 && Number(v) <= 5)) throw invalidArgValue(`events[${i}].fields.level`, v, 'must be 1 to 5');
  }
}

function rebuildTdp(events: MmuEvent[], format: SpteFormat): MmuPage {
  const latest = new Map<string, { level: number; gfn: bigint; spte: bigint }>();
  for (const e of events) {
    if (e.event !== 'kvm_tdp_mmu_spte_changed' || (e.fields.as_id ?? '0') !== '0') continue;
    const level = Number(e.fields.level);
    const gfn = hexBig(e.fields.gfn);
    latest.set(`${level}:${gfn}`, { level, gfn, spte: hexBig(e.fields.new_spte) });
  }
  const root = newMmuPage(4, 0n);
  // Parents first, so that children find their table's frame already set.
  const entries = [...latest.values()].filter((x) => x.spte & PRESENT).sort((a, b) => b.level - a.level || Number(a.gfn - b.gfn));
  for (const { level, gfn, spte } of entries) {
    const table = tableFor(root, level, gfn);
    const index = indexIn(level, gfn);
    const pfn = (spte & PFN_MASK) >> 12n;
    if (level === 1 || spte & PS) {
      table.spt[index] = leafOf(gfn, level, pfn, spte, format);
    } else {
      const child = childAt(table, index);
      child.pfn = pfn;
      const link = table.spt[index];
      if (link?.kind === 'table') link.spte = spte;
    }
  }
  return root;
}

function rebuildLegacy(events: MmuEvent[], format: SpteFormat): MmuPage {
  const root = newMmuPage(4, 0n);
  for (const e of events) {
    if (e.event !== 'kvm_mmu_get_page' && e.event !== 'kvm_mmu_set_spte') continue;
    const level = Number(e.fields.level);
    const gfn = hexBig(e.fields.gfn);
    if (e.event === 'kvm_mmu_get_page' && level < 4) {
      markInferred(root, level + 1, gfn);
    } else if (e.event === 'kvm_mmu_set_spte') {
      const spte = hexBig(e.fields.spte);
      const table = tableFor(root, level, gfn);
      const at = hexBig(e.fields.at); // physical address of the SPTE itself
      table.pfn = at >> 12n;
      const index = Number((at & 0xfffn) / 8n);
      if (index !== indexIn(level, gfn)) {
        throw invalidArgValue('events', e.fields, `hold an SPTE for gfn 0x${gfn.toString(16)} at index ${index}, where its level puts it at ${indexIn(level, gfn)}`);
      }
      table.spt[index] = spte & PRESENT ? leafOf(gfn, level, (spte & PFN_MASK) >> 12n, spte, format) : null;
    }
  }
  markAllInferred(root);
  return root;
}

// The table at `level` that holds `gfn`'s entry, created along the way.
function tableFor(root: MmuPage, level: number, gfn: bigint): MmuPage {
  let table = root;
  while (table.level > level) table = childAt(table, indexIn(table.level, gfn));
  return table;
}

function markInferred(root: MmuPage, parentLevel: number, gfn: bigint): void {
  const parent = tableFor(root, parentLevel, gfn);
  childAt(parent, indexIn(parentLevel, gfn));
}

function markAllInferred(page: MmuPage): void {
  for (const e of page.spt) {
    if (e?.kind !== 'table') continue;
    e.inferred = true;
    markAllInferred(e.child);
  }
}

function leafOf(gfn: bigint, level: number, pfn: bigint, spte: bigint, format: SpteFormat): SptLeaf {
  // A large leaf's low frame bits hold attributes (PAT), not address.
  const frames = (1n << (9n * BigInt(level - 1))) - 1n;
  return {
    kind: 'leaf',
    gfn,
    level,
    pfn: pfn & ~frames,
    spte,
    writable: (spte & 2n) !== 0n,
    executable: format === 'ept' ? (spte & 4n) !== 0n : (spte >> 63n) === 0n,
  };
}
