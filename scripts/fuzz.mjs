#!/usr/bin/env node
// Fuzzes every public function and method of dist/index.js with random
// receivers (live and closed objects) and random arguments (valid-ish and
// hostile), in child processes so that crashes and hangs are caught.
// Every call must succeed or throw one of the project's error kinds:
// KvmError, a TypeError/RangeError with a Node-style ERR_* code, GuestError
// or ElfError. Anything else is an "untyped" error.
//
//   node scripts/fuzz.mjs [--calls N] [--workers N] [--concurrency N] [--seed N]
//                         [--hang-seconds N] [--by-function] [--dist DIR] [--no-kvm]
//
// Exit code 1 when any untyped error, crash or hang was seen.
import { fork } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// --dist DIR fuzzes another build of the library (e.g. an older commit's).
const dist = process.argv.includes('--dist') ? process.argv[process.argv.indexOf('--dist') + 1] : process.env.NODE_KVM_FUZZ_DIST ?? join(root, 'dist');

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? Number(process.argv[i + 1]) : fallback;
}

if (process.argv[2] === '--child') await child();
else await parent();

// ---------------------------------------------------------------- parent --

async function parent() {
  const total = flag('calls', 100_000);
  const workers = flag('workers', 4);
  const seed = flag('seed', Date.now() % 1_000_000);
  const hangSeconds = flag('hang-seconds', 20);
  const concurrency = flag('concurrency', 2);
  if (!existsSync(join(dist, 'index.js'))) {
    console.error('fuzz: dist/index.js is missing; run `npx tsc -p tsconfig.json` first');
    process.exit(2);
  }
  let lib;
  try {
    lib = require(join(dist, 'index.js'));
  } catch (e) {
    console.error(`fuzz: cannot load the library: ${e.message}`);
    process.exit(2);
  }
  const probe = process.argv.includes('--no-kvm') ? { usable: false, reason: '--no-kvm given' } : kvmUsable(lib);
  console.log(`fuzz: ${total} calls in ${workers} child processes (${concurrency} at a time), seed ${seed}`);
  if (!probe.usable) console.log(`fuzz: no usable /dev/kvm (${probe.reason}); fuzzing only what does not need KVM`);

  const totals = { calls: 0, ok: 0, typed: 0, untyped: 0, crashes: 0, hangs: 0 };
  const examples = { untyped: new Map(), crashes: [], hangs: [] };
  const byFunction = new Map();
  const started = Date.now();

  const queue = [];
  const per = Math.ceil(total / workers);
  for (let w = 0; w < workers; w++) queue.push({ id: w, calls: Math.min(per, total - w * per), seed: seed * 1000 + w });

  const runOne = (job) =>
    new Promise((resolve) => {
      const progressFile = join(tmpdir(), `node-kvm-fuzz-${process.pid}-${job.id}-${job.seed}.txt`);
      const proc = fork(fileURLToPath(import.meta.url), ['--child', String(job.seed), String(job.calls), progressFile, probe.usable ? '1' : '0'], {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        execArgv: ['--expose-gc'],
        env: { ...process.env, NODE_KVM_FUZZ_DIST: dist },
      });
      let stderr = '';
      proc.stderr.on('data', (d) => {
        stderr = (stderr + d).slice(-4000);
      });
      let done = 0;
      let last = Date.now();
      let hung = false;
      const watchdog = setInterval(() => {
        if (Date.now() - last > hangSeconds * 1000) {
          hung = true;
          proc.kill('SIGKILL');
        }
      }, 500);
      proc.on('message', (m) => {
        last = Date.now();
        if (m.type === 'progress') {
          totals.calls += m.calls;
          totals.ok += m.ok;
          totals.typed += m.typed;
          totals.untyped += m.untyped;
          done += m.calls;
          for (const [fn, c] of Object.entries(m.byFunction)) byFunction.set(fn, (byFunction.get(fn) ?? 0) + c);
          for (const u of m.examples) {
            const key = `${u.fn}: ${u.error.split('\n')[0]}`;
            if (!examples.untyped.has(key)) examples.untyped.set(key, { ...u, count: 0 });
            examples.untyped.get(key).count++;
          }
        }
      });
      proc.on('exit', (code, signal) => {
        clearInterval(watchdog);
        let lastCall = '';
        try {
          lastCall = readFileSync(progressFile, 'utf8');
        } catch {
          // never written
        }
        rmSync(progressFile, { force: true });
        const rest = job.calls - done;
        if (hung) {
          totals.hangs++;
          examples.hangs.push({ lastCall, seed: job.seed });
        } else if (code !== 0) {
          totals.crashes++;
          examples.crashes.push({ code, signal, lastCall, seed: job.seed, stderr: stderr.trim().split('\n').slice(-6).join('\n') });
        }
        // The calls a dead child did not make go to a fresh one.
        if ((hung || code !== 0) && rest > 1) {
          queue.push({ id: job.id, calls: rest - 1, seed: job.seed + 7919 });
        }
        resolve();
      });
    });

  const lanes = Array.from({ length: concurrency }, async () => {
    while (queue.length > 0) await runOne(queue.shift());
  });
  await Promise.all(lanes);

  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`\nfuzz finished in ${secs} s`);
  console.table({
    calls: totals.calls,
    ok: totals.ok,
    'typed errors': totals.typed,
    'untyped errors': totals.untyped,
    crashes: totals.crashes,
    hangs: totals.hangs,
  });
  console.log(`functions exercised: ${byFunction.size}`);
  if (process.argv.includes('--by-function')) console.table(Object.fromEntries([...byFunction].sort()));
  const show = [...examples.untyped.values()].slice(0, 12);
  if (show.length) {
    console.log(`\nuntyped errors (${examples.untyped.size} distinct, first ${show.length}):`);
    for (const u of show) console.log(`- ${u.fn}(${u.args})\n    ${u.error.split('\n').slice(0, 3).join('\n    ')}  [x${u.count}]`);
  }
  for (const c of examples.crashes.slice(0, 5)) {
    console.log(`\ncrash: exit ${c.code} signal ${c.signal} (seed ${c.seed})\n  last call: ${c.lastCall}\n  ${c.stderr.replace(/\n/g, '\n  ')}`);
  }
  for (const h of examples.hangs.slice(0, 5)) console.log(`\nhang (seed ${h.seed}): last call: ${h.lastCall}`);
  process.exit(totals.untyped + totals.crashes + totals.hangs > 0 ? 1 : 0);
}

function kvmUsable(lib) {
  try {
    const kvm = lib.Kvm.open();
    kvm.createVm({ tssAddr: null }).close();
    kvm.close();
    return { usable: true };
  } catch (e) {
    return { usable: false, reason: e.message };
  }
}

// ----------------------------------------------------------------- child --

async function child() {
  const [seedArg, callsArg, progressFile, kvmArg] = process.argv.slice(3);
  const lib = require(join(dist, 'index.js'));
  const { KvmError, GuestError, ElfError } = lib;
  const haveKvm = kvmArg === '1';
  const rand = mulberry32(Number(seedArg));
  const calls = Number(callsArg);
  const progressFd = openSync(progressFile, 'w');
  // The call in flight, for the parent to report if this process dies.
  const note = (text) => {
    ftruncateSync(progressFd, 0);
    writeSync(progressFd, text, 0);
  };

  const r = {
    int: (n) => Math.floor(rand() * n),
    chance: (p) => rand() < p,
    pick: (list) => list[Math.floor(rand() * list.length)],
  };

  // --- hostile values ---
  const hostileScalars = [
    undefined, null, NaN, -0, 0, 1, -1, 1.5, -1.5, Infinity, -Infinity, 2 ** 16, 2 ** 16 + 1, 0xffff, 2 ** 31, 2 ** 32, 2 ** 32 + 1,
    2 ** 53, 2 ** 53 + 2, 2 ** 64, Number.MAX_VALUE, Number.MIN_VALUE, 4096, 4095, 0x1000, 0x100000, 0x7fffffff,
    0n, 1n, -1n, 0x1000n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, -(2n ** 64n), 2n ** 100n,
    '', 'x', '0', '4096', '/dev/kvm', '/dev/kvm\0junk', 'long', 'real', 'hlt', '\0', 'toString', '__proto__',
    true, false, Symbol('s'),
  ];
  const hostile = (depth = 0) => {
    const k = r.int(14);
    if (k < 8 || depth > 2) return r.pick(hostileScalars);
    switch (k) {
      case 8: return Array.from({ length: r.int(6) }, () => hostile(depth + 1));
      case 9: return { [r.pick(['rpi', 'slot', 'x', 'base', 'limit', 'mode', 'type'])]: hostile(depth + 1) };
      case 10: return r.pick([new Uint8Array(r.int(64)), new Uint8Array(0), new ArrayBuffer(r.int(5000)), new DataView(new ArrayBuffer(r.int(400))), Buffer.from('\x7fELF'), new Float64Array(3)]);
      case 11: return r.pick([() => undefined, () => { throw new Error('callback'); }, Array.isArray, function f() { return new Uint8Array(4096); }]);
      case 12: return Object.create(null);
      default: return pool.any();
    }
  };
  // A valid-ish value of a shape, sometimes swapped for a hostile one.
  const maybe = (valid, p = 0.75) => (r.chance(p) ? valid() : hostile());
  const u64 = () => r.pick([0, 0x1000, 0x10000, 0x20000, 0xfffbc000, r.int(0x100000), BigInt(r.int(0x100000)) * 0x1000n, 2n ** 64n - 0x1000n, 2n ** 47n]);
  const small = () => r.pick([0, 1, 2, 3, 4, 7, 15, 16, 255, 0xffff, r.int(512)]);
  const page = () => 0x1000 * r.pick([0, 1, 2, 4, 16, 64, 256, r.int(64)]);
  const gpa = () => r.pick([0, 0x1000, 0x10000, 0x100000, 0x1000n * BigInt(r.int(1 << 20)), 0x10800, 2n ** 52n]);
  const bool = () => r.chance(0.5);
  // An object from a spec of key -> generator: keys dropped, unknown keys added.
  const obj = (spec, pKeep = 0.6) => {
    const o = {};
    for (const [k, g] of Object.entries(spec)) if (r.chance(pKeep)) o[k] = maybe(g, 0.85);
    if (r.chance(0.08)) o[r.pick(['rpi', 'extra', 'Slot'])] = 1;
    return o;
  };
  const segment = () => obj({ base: u64, limit: () => r.pick([0xffff, 0xfffff, 0xffffffff, 2 ** 32]), selector: () => r.pick([0, 8, 0x10, 0xffff, 0x10000]), type: () => r.int(17), present: () => r.int(3), dpl: () => r.int(5), db: () => r.int(2), s: () => r.int(2), l: () => r.int(2), g: () => r.int(2), avl: () => r.int(2), unusable: () => r.int(2) });
  const descriptor = () => obj({ base: () => r.pick([0n, 0x1000n, 0xffffffffn, 2n ** 32n]), limit: () => r.pick([0xfffff, 0x100000, 0]), type: () => r.int(17), s: () => r.int(2), dpl: () => r.int(4), present: () => r.int(2), avl: () => r.int(2), l: () => r.int(2), db: () => r.int(2), g: () => r.int(2) }, 0.95);
  const regs = () => obj(Object.fromEntries(['rax', 'rbx', 'rcx', 'rsp', 'rip', 'rflags', 'r15'].map((k) => [k, u64])), 0.3);
  const sregs = () => obj({ cs: segment, ds: segment, ss: segment, tr: segment, gdt: () => obj({ base: u64, limit: () => r.pick([0, 0xffff, 0x10000]) }), idt: () => obj({ base: u64, limit: small }), cr0: () => r.pick([0n, 0x11n, 0x60000010n, 0x80000011n]), cr4: () => r.pick([0n, 0x20n]), efer: () => r.pick([0n, 0x500n]), interruptBitmap: () => r.pick([[0n, 0n, 0n, 0n], [0n], [1, 2, 3, 4, 5]]) }, 0.25);
  const cpuid = () => (r.chance(0.5) && pool.kvm() ? pool.kvm().live.getSupportedCpuid?.() : Array.from({ length: r.int(4) }, () => obj({ function: small, index: small, flags: small, eax: small, ebx: small, ecx: small, edx: small }, 0.95)));
  const range = () => obj({ start: u64, end: u64, what: () => 'x' }, 0.9);
  const mapping = () => obj({ virt: () => r.pick([0, 0x200000, 0x1000n, 2n ** 47n - 0x1000n, 2n ** 64n - 2n ** 47n]), phys: () => r.pick([0, 0x200000, 0x1000]), size: () => r.pick([0x1000, 0x2000, 0x200000, 0, 0x40000000]), pageSize: () => r.pick([0x1000, 0x200000, 0x400000, 0x40000000, 0x2000]), writable: bool, user: bool }, 0.8);
  const budgetMem = () => {
    // Guest-physical memory for page-table builders: at most 32 pages, then a typed error.
    const pages = new Map();
    return (a, n) => {
      const key = BigInt(a) & ~0xfffn;
      if (!pages.has(key)) {
        if (pages.size >= 32) throw new RangeError('fuzz: page budget');
        pages.set(key, new Uint8Array(4096));
      }
      return pages.get(key).subarray(Number(BigInt(a) & 0xfffn), Number(BigInt(a) & 0xfffn) + n);
    };
  };
  const memFn = () => r.pick([budgetMem(), budgetMem(), () => null, () => new Uint8Array(8), (a, n) => (pool.vm() ? pool.vm().live.memoryAt(a, n) : new Uint8Array(n))]);

  // --- receivers: a pool of live and closed objects, rebuilt now and then ---
  const pool = makePool();
  function makePool() {
    let state;
    const closers = [];
    const HLT = 0xf4;
    const build = () => {
      for (const c of closers.splice(0)) try { c(); } catch { /* already gone */ }
      const s = { memories: [], closedMemory: undefined };
      const m = lib.GuestMemory.allocate(0x10000);
      m.bytes.fill(HLT);
      const cm = lib.GuestMemory.allocate(0x1000);
      cm.close();
      s.memories.push(m);
      s.closedMemory = cm;
      s.pageBuilder = new lib.PageTableBuilder('long', budgetMem(), 0x1000);
      s.tree = lib.predictTree([0n, 1n, 512n, 0x40000n]);
      if (haveKvm) {
        const kvm = lib.Kvm.open();
        const closedKvm = lib.Kvm.open();
        closedKvm.close();
        const vm = kvm.createVm();
        const slot = vm.addSlot({ guestPhysAddr: 0, memory: m });
        const extra = lib.GuestMemory.allocate(0x4000);
        const dirtySlot = vm.addSlot({ guestPhysAddr: 0x100000, memory: extra, flags: lib.MemFlag.LOG_DIRTY_PAGES });
        const vcpu = vm.createVcpu();
        lib.setupMode(vcpu, { mode: 'real', entry: 0x1000 });
        const closedVm = kvm.createVm();
        const closedVcpu = closedVm.createVcpu();
        const deadSlot = closedVm.addSlot({ guestPhysAddr: 0, memory: lib.GuestMemory.allocate(0x1000) });
        closedVm.close();
        const stats = vm.openStats();
        const closedStats = vcpu.openStats();
        closedStats.close();
        Object.assign(s, { kvm, closedKvm, vm, closedVm, vcpu, closedVcpu, slot, dirtySlot, deadSlot, extra, stats, closedStats, dirtyLog: dirtySlot.getDirtyLog() });
        closers.push(() => stats.close(), () => vm.close(), () => kvm.close(), () => extra.close());
        // eventfds and rings: a VM with a dirty ring, where KVM has one
        try {
          const ringVm = kvm.createVm();
          closers.push(() => ringVm.close());
          ringVm.enableDirtyRing(0x10000);
          ringVm.addSlot({ guestPhysAddr: 0, memory: m, flags: lib.MemFlag.LOG_DIRTY_PAGES });
          s.ringVcpu = ringVm.createVcpu();
        } catch {
          // no dirty ring here: harvests get the pool's vCPUs
        }
      }
      s.eventfd = new lib.EventFd();
      s.closedEventfd = new lib.EventFd();
      s.closedEventfd.close();
      closers.push(() => s.eventfd.close());
      closers.push(() => m.close());
      state = s;
    };
    build();
    const liveOrClosed = (live, closed, p = 0.85) => () => (live === undefined ? undefined : { live: r.chance(p) || closed === undefined ? live() : closed() });
    return {
      rebuild: build,
      closers,
      state: () => state,
      kvm: liveOrClosed(() => state.kvm, () => state.closedKvm),
      vm: liveOrClosed(state.vm && (() => state.vm), () => state.closedVm),
      vcpu: liveOrClosed(state.vcpu && (() => state.vcpu), () => state.closedVcpu),
      memory: () => ({ live: r.chance(0.85) ? state.memories[r.int(state.memories.length)] : state.closedMemory }),
      slot: liveOrClosed(state.slot && (() => r.pick([state.slot, state.dirtySlot])), () => state.deadSlot),
      stats: liveOrClosed(state.stats && (() => state.stats), () => state.closedStats),
      dirtyLog: () => state.dirtyLog && { live: state.dirtyLog },
      eventfd: () => ({ live: r.chance(0.85) ? state.eventfd : state.closedEventfd }),
      ringVcpu: () => (state.vcpu === undefined ? undefined : { live: r.pick([state.ringVcpu ?? state.vcpu, state.ringVcpu ?? state.vcpu, state.vcpu, state.closedVcpu]) }),
      any: () => r.pick([state.vm, state.vcpu, state.memories[0], state.slot, state.kvm, state.tree, state.dirtyLog, state.closedMemory].filter((x) => x !== undefined)),
    };
  }
  // Sync runs must end: put the vCPU where it halts at once (hlt at 0x1000
  // in real mode, whatever slot is there now), or bound the run.
  const resetVcpu = (v) => {
    try {
      v.vm.memoryAt(0x1000, 0x1000).fill(0xf4);
    } catch {
      // no memory at 0x1000: the fetch exits as MMIO
    }
    try {
      const seg = { base: 0n, selector: 0, limit: 0xffff, type: 3, present: 1, s: 1, db: 0, l: 0, g: 0, dpl: 0, unusable: 0 };
      v.setSregs({ cs: { ...seg, type: 11 }, ds: seg, es: seg, fs: seg, gs: seg, ss: seg, cr0: 0x60000010n, cr4: 0n, efer: 0n });
      v.setRegs({ rip: 0x1000, rflags: 2 });
      v.setGuestDebug(null);
    } catch {
      // closed vCPU: the call under test throws too
    }
  };
  let timeouts = true;
  const safeVcpu = (v) => {
    if (!timeouts || r.chance(0.7)) resetVcpu(v);
  };
  // A sync run() with no deadline ends only at an exit, as KVM_RUN does:
  // one is made only after the reset (a guest the fuzzer left at a random
  // cs base can spin for good, and that is no hang of node-kvm's).
  let boundedRun = true;
  const beforeRun = (v) => {
    boundedRun = timeouts && r.chance(0.8);
    if (boundedRun) safeVcpu(v);
    else resetVcpu(v);
  };
  try {
    if (haveKvm) pool.state().vcpu.run({ timeoutMs: 10 });
  } catch (e) {
    if (e?.code === 'ERR_INVALID_ARG_VALUE' || e?.code === 'ERR_INVALID_ARG_TYPE') timeouts = false;
  }
  const runOptions = () => (timeouts ? { timeoutMs: r.pick([1, 5, 20]) } : undefined);

  // --- the surface: [name, receiver, args] ---
  const L = lib;
  const fns = [
    // Kvm
    ['Kvm.open', null, () => [maybe(() => r.pick(['/dev/kvm', '/dev/null', '/nonexistent', '', '/dev/kvm\0junk', '/tmp']), 0.7)], { holder: () => L.Kvm, member: 'open', when: haveKvm }],
    ['kvm.checkExtension', pool.kvm, () => [maybe(() => r.pick([0, 3, 10, 66, 128, 203, 2 ** 32, r.int(300)]))]],
    ['kvm.createVm', pool.kvm, () => (r.chance(0.2) ? [] : [maybe(() => obj({ type: () => r.pick([0, 1, 2 ** 32, 0x7f]), tssAddr: () => r.pick([null, 0xfffbc000, 2n ** 64n - 0x1000n, 0x1000n]) }))])],
    ['kvm.getSupportedCpuid', pool.kvm, () => []],
    ['kvm.apiVersion', pool.kvm, () => []],
    ['kvm.vcpuMmapSize', pool.kvm, () => []],
    ['kvm.fd', pool.kvm, 'get'],
    // Vm
    ['vm.checkExtension', pool.vm, () => [maybe(() => r.pick([0, 10, 66, 118, 128]))]],
    ['vm.setTssAddr', pool.vm, () => [maybe(u64)]],
    ['vm.setIdentityMapAddr', pool.vm, () => [maybe(u64)]],
    ['vm.addSlot', pool.vm, () => [maybe(() => obj({ guestPhysAddr: gpa, memory: () => pool.memory().live, offset: page, size: page, flags: () => r.pick([0, 1, 2, 3, 4, NaN]), slot: () => r.pick([0, 1, 5, 32763, 32764, 0x10000, 2 ** 32 + 1, 1.5, NaN]) }, 0.8))]],
    ['vm.createGuestMemfd', pool.vm, () => [maybe(() => r.pick([0x1000, 0x10000, 0, 4097, 2 ** 40]))], { after: 'close' }],
    ['vm.slots', pool.vm, 'get'],
    ['vm.findSlot', pool.vm, () => [maybe(gpa)]],
    ['vm.memoryAt', pool.vm, () => [maybe(gpa), maybe(() => r.pick([0, 1, 16, 0x1000, 0x10000, 0x10001, -1, undefined]))]],
    ['vm.gpaToHva', pool.vm, () => [maybe(gpa)]],
    ['resolveGpa', null, () => [maybe(() => pool.vm()?.live), maybe(gpa)], { holder: () => L, member: 'resolveGpa', when: haveKvm }],
    ['vm.openStats', pool.vm, () => [], { after: 'close' }],
    ['vm.enableCap', pool.vm, () => [maybe(() => r.pick([168, 0, 2 ** 32])), maybe(() => r.pick([[1], [3], [], [1, 2, 3, 4, 5], [-1]]))]],
    ['vm.enableManualDirtyLogProtect', pool.vm, () => (r.chance(0.2) ? [] : [maybe(() => obj({ initiallySet: bool }))])],
    ['vm.manualDirtyLogProtect', pool.vm, 'get'],
    ['vm.createVcpu', pool.vm, () => (r.chance(0.2) ? [] : [maybe(() => r.pick([0, 1, 2, 4095, 4096, 2 ** 32 + 1, 1.5]))])],
    ['vm.fd', pool.vm, 'get'],
    // Vcpu
    ['vcpu.run', pool.vcpu, () => (boundedRun ? [runOptions()] : r.chance(0.5) ? [] : [hostile()]), { before: beforeRun }],
    ['vcpu.runAsync', pool.vcpu, () => (timeouts ? [maybe(() => ({ timeoutMs: r.pick([1, 10]) }), 0.9)] : []), { before: safeVcpu }],
    ['runUntilHalt', null, () => [maybe(() => pool.vcpu()?.live), ...(r.chance(0.3) ? [] : [maybe(() => obj({ io: () => () => {}, mmio: () => () => {}, debug: () => () => {} }))]), ...(timeouts ? [{ timeoutMs: 50 }] : [])], { holder: () => L, member: 'runUntilHalt', when: haveKvm, before: resetVcpu }],
    ['vcpu.kick', pool.vcpu, () => []],
    ['vcpu.getRegs', pool.vcpu, () => []],
    ['vcpu.setRegs', pool.vcpu, () => [maybe(regs)]],
    ['vcpu.getSregs', pool.vcpu, () => []],
    ['vcpu.setSregs', pool.vcpu, () => [maybe(sregs)]],
    ['vcpu.openStats', pool.vcpu, () => [], { after: 'close' }],
    ['vcpu.setCpuid', pool.vcpu, () => [maybe(cpuid)]],
    ['vcpu.translate', pool.vcpu, () => [maybe(u64)]],
    ['vcpu.setGuestDebug', pool.vcpu, () => [r.chance(0.2) ? null : maybe(() => obj({ singleStep: bool, breakpoints: () => r.pick([[], [0x1000], [1, 2, 3, 4, 5], [-1]]), softwareBreakpoints: bool }))]],
    ['vcpu.kickHandle', pool.vcpu, 'get'],
    ['kickVcpu', null, () => [maybe(() => r.pick([pool.vcpu()?.live?.kickHandle ?? 1n, 0n, 2n ** 64n, -1n, 1]))], { holder: () => L, member: 'kickVcpu' }],
    ['kickSignal', null, () => [], { holder: () => L, member: 'kickSignal' }],
    ['setKickSignal', null, () => [maybe(() => r.pick([L.kickSignal(), 12, 34, 64, 65, 2, 9, 1.5]))], { holder: () => L, member: 'setKickSignal' }],
    ['runUntilHaltAsync', null, () => [maybe(() => pool.vcpu()?.live), maybe(() => obj({ io: () => () => {}, debug: () => () => {} })), { timeoutMs: 50, ...(r.chance(0.3) ? { signal: AbortSignal.timeout(5) } : {}) }], { holder: () => L, member: 'runUntilHaltAsync', when: haveKvm, before: resetVcpu }],
    ['handleExit', null, () => [maybe(() => r.pick([{ reason: 'hlt' }, { reason: 'intr' }, { reason: 'io' }, { reason: 'shutdown' }, { reason: 'mmio' }])), maybe(() => obj({ io: () => () => {}, mmio: () => () => {} }))], { holder: () => L, member: 'handleExit' }],
    ['realModeGuest', null, () => [maybe(() => r.pick([[0xf4], new Uint8Array([0xeb, 0xfe]), []])), r.chance(0.5) ? undefined : maybe(() => obj({ memorySize: () => r.pick([0x2000, 0x1000, 0x10000, 4097, 0]), kvm: () => pool.kvm()?.live }))], { holder: () => L, member: 'realModeGuest', when: haveKvm, after: 'close' }],
    ['vcpu.id', pool.vcpu, 'get'],
    // eventfds and rings
    ['new EventFd', null, () => [], { holder: () => L, member: 'EventFd', ctor: true, after: 'close' }],
    ['eventFd.write', pool.eventfd, () => (r.chance(0.2) ? [] : [maybe(() => r.pick([1, 1n, 0, 2n ** 64n - 2n, 2n ** 64n - 1n, -1, 1.5]))])],
    ['eventFd.read', pool.eventfd, () => []],
    ['eventFd.wait', pool.eventfd, () => [], { before: (e) => { try { e.write(1); } catch { /* closed or full: wait settles anyway */ } } }],
    ['eventFd.close', pool.eventfd, () => [], { before: () => { if (r.chance(0.9)) throw new SkipCall(); } }],
    ['eventFd.fd', pool.eventfd, 'get'],
    ['eventFd.pendingWaits', pool.eventfd, 'get'],
    ['vm.ioeventfd', pool.vm, () => [maybe(() => obj({ address: () => r.pick([0x600, 0xd0000, 0xffff, 0x10000, 2n ** 64n - 1n, -1]), length: () => r.pick([0, 1, 2, 3, 4, 8, 16]), datamatch: () => r.pick([0, 7, 0x100, 2n ** 64n - 1n]), pio: bool, eventfd: () => pool.eventfd().live }, 0.8))], { after: 'remove' }],
    ['vm.irqfd', pool.vm, () => [maybe(() => obj({ gsi: () => r.pick([0, 4, 15, 4095, 4096, -1]), eventfd: () => pool.eventfd().live, resample: () => r.pick([pool.eventfd().live, new lib.EventFd()]) }, 0.8))], { after: 'remove' }],
    ['vm.addCoalescedZone', pool.vm, () => [maybe(() => obj({ address: () => r.pick([0x700, 0xd0000, 0xff00, 2n ** 64n - 1n]), size: () => r.pick([0, 1, 0x100, 0x1000, 2 ** 32]), pio: bool }, 0.8))], { after: 'remove' }],
    ['vm.enableDirtyRing', pool.vm, () => [maybe(() => r.pick([4096, 0x10000, 1000, 2 ** 20, 2 ** 21, 0]))]],
    ['vm.resetDirtyRings', pool.vm, () => []],
    ['vm.dirtyRingBytes', pool.vm, 'get'],
    ['vcpu.drainCoalesced', pool.vcpu, () => (r.chance(0.4) ? [] : [maybe(() => r.pick([() => {}, (a, n, d) => d.fill(0)]))])],
    ['vcpu.harvestDirtyRing', pool.ringVcpu, () => []],
    ['vcpu.harvestDirtyRingInto', pool.ringVcpu, () => [maybe(() => new Uint32Array(r.int(4))), maybe(() => new BigUint64Array(r.int(4)))]],
    ['vcpu.running', pool.vcpu, 'get'],
    // GuestMemory
    ['GuestMemory.allocate', null, () => [maybe(() => r.pick([0x1000, 0x2000, 0x200000, 4097, 0, 2 ** 32, 2 ** 33, 2 ** 40])), r.chance(0.5) ? undefined : maybe(() => obj({ hugePages: () => r.pick([true, false, 'hugetlb', 'yes']) }))], { holder: () => L.GuestMemory, member: 'allocate', after: 'close' }],
    ['GuestMemory.from', null, () => [r.pick([new ArrayBuffer(0x1000), new SharedArrayBuffer(0x1000), new WebAssembly.Memory({ initial: 1 }), new Uint8Array(new WebAssembly.Memory({ initial: 1 }).buffer, 0x1000, 0x1000), new Uint8Array(10), hostile()])], { holder: () => L.GuestMemory, member: 'from', after: 'keep' }],
    ['memory.buffer', pool.memory, 'get'],
    ['memory.bytes', pool.memory, 'get'],
    ['memory.view', pool.memory, () => [maybe(() => r.pick([0, 0x1000, 0x10000, 0x10001])), maybe(() => r.pick([0, 1, 0x1000, 0x10000]))]],
    ['memory.size', pool.memory, 'get'],
    ['memory.address', pool.memory, 'get'],
    ['memory.kind', pool.memory, 'get'],
    ['memory.slotCount', pool.memory, 'get'],
    // MemorySlot
    ['slot.contains', pool.slot, () => [maybe(gpa)]],
    ['slot.bytes', pool.slot, 'get'],
    ['slot.view', pool.slot, () => [maybe(() => r.pick([0, 0x1000, 0x10000])), maybe(() => r.pick([0, 1, 0x1000, 0x10001]))]],
    ['slot.hvaOf', pool.slot, () => [maybe(gpa)]],
    ['slot.move', pool.slot, () => [maybe(gpa)]],
    ['slot.setFlags', pool.slot, () => [maybe(() => r.pick([0, 1, 2, 3, 8, NaN]))]],
    ['slot.getDirtyLog', pool.slot, () => []],
    ['slot.clearDirtyLog', pool.slot, () => (r.chance(0.4) ? [] : [maybe(() => pool.dirtyLog()?.live)])],
    ['slot.delete', pool.slot, () => [], { before: () => { if (r.chance(0.8)) throw new SkipCall(); } }],
    // DirtyLog
    ['DirtyLog.bytesFor', null, () => [maybe(() => r.pick([0, 1, 64, 65, 2 ** 40]))], { holder: () => L.DirtyLog, member: 'bytesFor' }],
    ['dirtyLog.isDirty', pool.dirtyLog, () => [maybe(() => r.pick([0, 1, 3, 4, 100]))]],
    ['dirtyLog.pages', pool.dirtyLog, () => []],
    ['dirtyLog.gfns', pool.dirtyLog, () => []],
    // KvmStats
    ['stats.read', pool.stats, () => []],
    ['stats.get', pool.stats, () => [maybe(() => r.pick(['pages_4k', 'nope', 'exits', '']))]],
    // x86
    ['encodeDescriptor', null, () => [maybe(descriptor)], { holder: () => L, member: 'encodeDescriptor' }],
    ['decodeDescriptor', null, () => [maybe(u64)], { holder: () => L, member: 'decodeDescriptor' }],
    ['segmentFor', null, () => [maybe(() => r.pick([0, 8, 0xffff, 0x10000])), maybe(descriptor)], { holder: () => L, member: 'segmentFor' }],
    ['flatGdt', null, () => [], { holder: () => L, member: 'flatGdt' }],
    // paging
    ['new PageTableBuilder', null, () => [maybe(() => r.pick(['long', 'pae', 'paging32', 'x'])), maybe(memFn), maybe(() => r.pick([0x1000, 0x2000, 0x1800, 2n ** 64n - 0x1000n])), r.chance(0.5) ? undefined : maybe(() => obj({ limit: u64, avoid: () => [range()] }))], { holder: () => L, member: 'PageTableBuilder', ctor: true }],
    ['pageTableBuilder.map', () => ({ live: pool.state().pageBuilder }), () => [maybe(mapping)]],
    ['pageTableBuilder.root', () => ({ live: pool.state().pageBuilder }), 'get'],
    ['walkPageTables', null, () => [maybe(() => r.pick(['long', 'pae', 'paging32'])), maybe(memFn), maybe(u64), maybe(u64)], { holder: () => L, member: 'walkPageTables' }],
    // modes
    ['setupMode', null, () => [maybe(() => pool.vcpu()?.live), maybe(() => obj({ mode: () => r.pick(['real', 'protected', 'paged', 'pae', 'long', 'x']), entry: () => r.pick([0x1000, 0x100000, 2 ** 32]), stack: () => r.pick([0x8000, 0x10000]), layout: () => obj({ gdt: () => r.pick([0x500, 0x1000, 2n ** 64n - 8n]), pageTables: () => r.pick([0x2000, 0x3000, 0x1800]) }), mappings: () => [mapping()], avoid: () => [range()] }, 0.7))], { holder: () => L, member: 'setupMode', when: haveKvm }],
    ['modeOf', null, () => [maybe(() => (r.chance(0.5) && pool.vcpu()?.live ? safeGet(() => pool.state().vcpu.getSregs()) : obj({ cr0: u64, cr4: u64, efer: u64 }, 0.9)))], { holder: () => L, member: 'modeOf' }],
    // loader
    ['loadFlat', null, () => [maybe(() => pool.vm()?.live), maybe(() => new Uint8Array(r.pick([0, 1, 16, 0x1000, 0x20000])).fill(0xf4)), maybe(gpa)], { holder: () => L, member: 'loadFlat', when: haveKvm }],
    ['loadElf', null, () => [maybe(() => pool.vm()?.live), maybe(() => elfLike(r))], { holder: () => L, member: 'loadElf', when: haveKvm }],
    ['new ElfError', null, () => [maybe(() => r.pick(['ERR_ELF_NOT_ELF', 'ERR_X'])), maybe(() => 'message')], { holder: () => L, member: 'ElfError', ctor: true }],
    // report
    ['guestError', null, () => [maybe(() => pool.vcpu()?.live), maybe(() => r.pick([{ reason: 'hlt' }, { reason: 'shutdown' }, { reason: 'fail_entry', hardwareReason: 1n, cpu: 0 }, { reason: 'unknown' }, { reason: 'internal_error', suberror: 1, data: [1n] }])), r.chance(0.5) ? undefined : maybe(() => 'why')], { holder: () => L, member: 'guestError', when: haveKvm }],
    ['disassemble', null, () => [maybe(() => new Uint8Array([0x90, 0xf4, 0x0f, 0x0b])), maybe(u64), maybe(() => r.pick([16, 32, 64, 8])), r.chance(0.5) ? undefined : maybe(small)], { holder: () => L, member: 'disassemble' }],
    // exits
    ['decodeExit', null, () => { const b = new ArrayBuffer(r.pick([0, 100, 4096, 3 * 4096])); const v = new DataView(b); if (b.byteLength > 300) { v.setUint32(L_OFF('exitReason'), r.pick([2, 6, 5, 9, 17, 4, 24, 1, 0, 99]), true); v.setUint8(L_OFF('ioSize'), r.pick([1, 2, 4, 0])); v.setUint32(L_OFF('ioCount'), r.pick([1, 3, 1000, 2 ** 31]), true); v.setBigUint64(L_OFF('ioDataOffset'), r.pick([4096n, 2n ** 63n, 0n]), true); v.setUint32(L_OFF('mmioLen'), r.pick([1, 4, 8, 100]), true); v.setUint32(L_OFF('internalNdata'), r.pick([0, 4, 2 ** 32 - 1]), true); } return [maybe(() => v, 0.9), maybe(() => new Uint8Array(b), 0.9)]; }, { holder: () => L, member: 'decodeExit', after: 'respond' }],
    // address, ept, render, host
    ['hvaToHpa', null, () => [maybe(() => r.pick([pool.state().memories[0].address, 0n, 2n ** 64n - 1n, 2n ** 47n, 0x1000n]))], { holder: () => L, member: 'hvaToHpa' }],
    ['eptIndex', null, () => [maybe(u64)], { holder: () => L, member: 'eptIndex' }],
    ['predictTree', null, () => [maybe(() => r.pick([[0n, 1n], [2n ** 36n], new Set([5n]), [1], 'ab'])), r.chance(0.5) ? undefined : maybe(() => r.int(5))], { holder: () => L, member: 'predictTree' }],
    ['tables', null, () => [maybe(() => pool.state().tree)], { holder: () => L, member: 'tables' }],
    ['leaves', null, () => [maybe(() => pool.state().tree)], { holder: () => L, member: 'leaves' }],
    ['newMmuPage', null, () => [maybe(() => r.int(6)), maybe(() => r.pick([0n, 512n, 2n ** 36n]))], { holder: () => L, member: 'newMmuPage' }],
    ['childAt', null, () => [maybe(() => r.pick([pool.state().tree, L.newMmuPage(1, 0n)])), maybe(() => r.pick([0, 511, 512, -1]))], { holder: () => L, member: 'childAt' }],
    ['indexIn', null, () => [maybe(() => r.int(6)), maybe(() => r.pick([0n, 2n ** 36n - 1n, 2n ** 36n]))], { holder: () => L, member: 'indexIn' }],
    ['renderMmuText', null, () => [maybe(() => pool.state().tree), r.chance(0.5) ? undefined : maybe(() => obj({ title: () => 't' }))], { holder: () => L, member: 'renderMmuText' }],
    ['renderMmuSvg', null, () => [maybe(() => pool.state().tree), r.chance(0.5) ? undefined : maybe(() => obj({ title: () => 't' }))], { holder: () => L, member: 'renderMmuSvg' }],
    ['probeKvm', null, () => (r.chance(0.3) ? [] : [maybe(() => r.pick(['/dev/kvm', '/nonexistent', '/dev/kvm\0x']))]), { holder: () => L, member: 'probeKvm', weight: 0.05 }],
    ['describeKvm', null, () => [maybe(() => ({ usable: true, vendorModule: 'kvm_pvm', tdp: false, tdpMmu: false, kernel: '6', hwBreakpoints: true, swBreakpoints: false, mmuTrace: false }))], { holder: () => L, member: 'describeKvm' }],
  ];
  const L_OFF = (k) => lib.decodeExit && require(join(dist, 'core/binding.js')).binding.runLayout[k];

  class SkipCall extends Error {}
  const counts = { calls: 0, ok: 0, typed: 0, untyped: 0 };
  let byFunction = {};
  let examples = [];
  const seen = new Set();
  const flush = () => {
    process.send({ type: 'progress', ...counts, byFunction, examples });
    counts.calls = counts.ok = counts.typed = counts.untyped = 0;
    byFunction = {};
    examples = [];
  };
  const typed = (e) =>
    (e instanceof KvmError && typeof e.code === 'string' && typeof e.errno === 'number' && typeof e.syscall === 'string') ||
    ((e instanceof TypeError || e instanceof RangeError) && typeof e.code === 'string' && e.code.startsWith('ERR_')) ||
    e instanceof GuestError ||
    e instanceof ElfError ||
    e?.message === 'callback' || e?.message === 'fuzz: page budget' || // the fuzzer's own callbacks
    // An aborted AbortSignal rejects with its own reason, as Node's APIs do.
    (e instanceof DOMException && (e.name === 'AbortError' || e.name === 'TimeoutError'));
  const show = (args) => args.map((a) => inspect(a, { depth: 1, breakLength: Infinity, maxArrayLength: 6, maxStringLength: 40 })).join(', ').slice(0, 300);

  const available = fns
    .map(([name, recvOf, argsOf, extra]) => {
      // Plain library functions: `[name, null, args, holder, member]`.
      return { name, recvOf, argsOf, ...(extra ?? {}) };
    })
    .filter((f) => f.when !== false && (f.recvOf === null || f.recvOf() !== undefined));
  for (let i = 0, made = 0; made < calls; i++) {
    if (i % 400 === 399) {
      pool.rebuild();
      globalThis.gc?.();
    }
    const { name, recvOf, argsOf, holder: holderOf, member, after, before, ctor, weight } = r.pick(available);
    if (weight !== undefined && !r.chance(weight)) continue;
    let recv;
    let args = [];
    let result;
    try {
      recv = recvOf === null ? holderOf() : recvOf()?.live;
      if (recv === undefined) continue;
      if (typeof before === 'function') before(recv);
      if (argsOf !== 'get') args = argsOf();
      note(`${name}(${show(args)})`);
      const prop = member ?? name.split('.')[1];
      if (argsOf === 'get') result = recv[prop];
      else if (ctor) result = new recv[prop](...args);
      else result = recv[prop](...args);
      if (result instanceof Promise) {
        // Bound any async run: kick it if it has not ended soon.
        const t = setTimeout(() => recv.kick?.(), 200);
        try {
          result = await result;
        } finally {
          clearTimeout(t);
        }
      }
      if (after === 'close') result?.close?.();
      else if (after === 'remove') result?.remove?.();
      else if (after === 'keep' && result && typeof result.close === 'function') pool.closers.push(() => result.close());
      else if (after === 'respond' && result && typeof result.respond === 'function') {
        const val = maybe(() => r.pick([0, 1, [1, 2], 0xffn, 2 ** 40, [300]]));
        note(`${name}(...).respond(${show([val])})`);
        result.respond(val);
      }
      counts.ok++;
    } catch (e) {
      if (e instanceof SkipCall) continue;
      if (typed(e)) counts.typed++;
      else {
        counts.untyped++;
        const key = `${name}:${e?.constructor?.name}:${String(e?.message).slice(0, 60)}`;
        if (!seen.has(key) && seen.size < 50) {
          seen.add(key);
          examples.push({ fn: name, args: show(args), error: `${e?.constructor?.name ?? typeof e}${e?.code ? ` [${e.code}]` : ''}: ${e?.message ?? String(e)}\n${String(e?.stack ?? '').split('\n').slice(1, 3).join('\n')}` });
        }
      }
    }
    counts.calls++;
    made++;
    byFunction[name] = (byFunction[name] ?? 0) + 1;
    if (counts.calls >= 250) {
      flush();
      await new Promise((res) => setImmediate(res));
    }
  }
  flush();
  closeSync(progressFd);
  for (const c of pool.closers.splice(0)) try { c(); } catch { /* gone */ }
  process.disconnect?.();
  process.exit(0);
}

function safeGet(f) {
  try {
    return f();
  } catch {
    return {};
  }
}

// A mostly well-formed 64-bit ELF with one PT_LOAD segment; fields randomised.
function elfLike(r) {
  const f = new Uint8Array(r.pick([10, 64, 0x200]));
  const v = new DataView(f.buffer);
  if (f.length >= 64) {
    v.setUint32(0, 0x7f454c46);
    f[4] = r.pick([1, 2, 2, 3]);
    f[5] = r.pick([1, 1, 2]);
    v.setUint16(16, r.pick([2, 2, 3]), true);
    v.setUint16(18, r.pick([62, 62, 3]), true);
    v.setBigUint64(24, 0x1000n, true);
    v.setBigUint64(32, r.pick([64n, 2n ** 63n]), true);
    v.setUint16(54, r.pick([56, 10]), true);
    v.setUint16(56, r.pick([1, 0, 1000]), true);
  }
  if (f.length >= 0x200) {
    v.setUint32(64, 1, true);
    v.setBigUint64(64 + 8, 0x100n, true);
    v.setBigUint64(64 + 24, r.pick([0x1000n, 0x100000n, 2n ** 64n - 0x10n, 0x3000n]), true);
    v.setBigUint64(64 + 32, r.pick([0x10n, 0x1000n]), true);
    v.setBigUint64(64 + 40, r.pick([0x10n, 0x2000n, 2n ** 60n]), true);
    f.fill(0xf4, 0x100, 0x110);
  }
  return f;
}

function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
