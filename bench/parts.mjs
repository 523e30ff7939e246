// `node bench/parts.mjs`: where the gap between node-kvm and C goes, for the
// I/O and MMIO exit rows and the VM life row. Each figure is measured four
// ways, in interleaved rounds: the C program; the same C inside this Node
// process (a Node-API module, bench/inproc.c); node-kvm's native layer
// called directly (no TypeScript); and the public API, as `npm run bench`
// runs it. Each has a fifth: the least any Node binding does (per exit, a
// plain Node-API call and one exit object; per VM life, one plain call per
// step and the memory as an ArrayBuffer). Needs a usable /dev/kvm here
// (no sandbox) and Node's headers, as the addon does.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { cProgram, lib, median, now, root, ROUNDS, turn, usSince } from './harness.mjs';
import { checkWrite, ioExits, lifecycles, mmioExits, stepper, withGuest } from './exits.mjs';
import { GUESTS, hex, PORT } from './guests.mjs';
import { buildC, INPROC } from './build.mjs';

if (!lib.probeKvm().usable) {
  console.error('bench/parts.mjs: no usable /dev/kvm here; it measures the host only');
  process.exit(1);
}
buildC();
if (!existsSync(INPROC)) {
  console.error("bench/parts.mjs: Node's headers were not found, so bench/inproc.c could not be built");
  process.exit(1);
}
const inproc = createRequire(import.meta.url)(INPROC);
const { binding, NativeMemory, NativeVcpu, NativeVm } = createRequire(import.meta.url)(join(root, 'dist/core/binding.js'));
const { encodeSregs, SREGS_SIZE } = createRequire(import.meta.url)(join(root, 'dist/core/regs.js'));
const { Kvm } = lib;

// User CPU time is what the layers add on top of the kernel's work. The
// kernel counts it in ticks (250 Hz here): over a figure's rounds that is
// hundreds of ticks, a few percent of error. Node 23.9+ counts this thread
// alone; older lines count the process (its other threads are idle here).
const cpu = process.threadCpuUsage ? () => process.threadCpuUsage() : () => process.cpuUsage();
const CPU_SOURCE = process.threadCpuUsage ? 'this thread' : 'this process';

const KVM_EXIT_IO = 2;
const KVM_EXIT_HLT = 5;
const KVM_EXIT_MMIO = 6;
const EXIT_GUESTS = { io: GUESTS.ioLoop, mmio: GUESTS.mmioBurst };

// The exit loop through the native vCPU object: one N-API call per exit,
// the exit reason only (no exit object).
function nativeExits(kind, n) {
  const wanted = kind === 'io' ? KVM_EXIT_IO : KVM_EXIT_MMIO;
  return withGuest(EXIT_GUESTS[kind], n, (g) => {
    const slot = g.vcpu.native.runSlot;
    const { runVcpu } = binding;
    let exits = 0;
    const t0 = now();
    for (;;) {
      const reason = runVcpu(slot);
      if (reason === wanted) exits++;
      else if (reason === KVM_EXIT_HLT) break;
    }
    if (exits !== n) throw new Error(`native ${kind}: ${exits} exits, expected ${n}`);
    return usSince(t0) / n;
  });
}

// The least any binding does per exit: one plain Node-API call that runs
// KVM_RUN (bench/inproc.c's kvmRun, no checks, no kick or time-out), and
// one exit object with the fields of node-kvm's, read from kvm_run (for
// MMIO, its two bigints: the address and the value).
class FloorIoExit {
  constructor(direction, port, size, count, data, value) {
    this.reason = 'io';
    this.direction = direction;
    this.port = port;
    this.size = size;
    this.count = count;
    this.data = data;
    this.value = value;
  }
}
class FloorMmioExit {
  constructor(address, length, isWrite, data, value) {
    this.reason = 'mmio';
    this.address = address;
    this.length = length;
    this.isWrite = isWrite;
    this.data = data;
    this.value = value;
  }
}
function floorExits(kind, n) {
  return withGuest(EXIT_GUESTS[kind], n, (g) => {
    const { runLayout: L } = binding;
    const fd = g.vcpu.fd;
    const buffer = g.vcpu.native.runBuffer;
    const view = new DataView(buffer);
    const bytes = new Uint8Array(buffer);
    let window = bytes;
    let windowKey = -1;
    const windowAt = (offset, length) => {
      if (offset * 65536 + length !== windowKey) {
        window = bytes.subarray(offset, offset + length);
        windowKey = offset * 65536 + length;
      }
      return window;
    };
    let seen = 0;
    const t0 = now();
    for (;;) {
      inproc.kvmRun(fd);
      const reason = view.getUint32(L.exitReason, true);
      if (reason === KVM_EXIT_HLT) break;
      if (reason === KVM_EXIT_IO) {
        const size = view.getUint8(L.ioSize);
        const count = view.getUint32(L.ioCount, true);
        const data = windowAt(view.getUint32(L.ioDataOffset, true), size * count);
        const exit = new FloorIoExit(view.getUint8(L.ioDirection) === 0 ? 'in' : 'out', view.getUint16(L.ioPort, true), size, count, data, data[0]);
        if (exit.port === PORT) seen++;
      } else if (reason === KVM_EXIT_MMIO) {
        const length = view.getUint32(L.mmioLen, true);
        const data = windowAt(L.mmioData, length);
        const exit = new FloorMmioExit(view.getBigUint64(L.mmioPhysAddr, true), length, view.getUint8(L.mmioIsWrite) !== 0, data, BigInt(data[0]));
        if (exit.isWrite) checkWrite(seen++, exit.address, exit.data[0]);
      } // anything else (intr): run again
    }
    if (seen !== n) throw new Error(`floor ${kind}: ${seen} exits, expected ${n}`);
    return usSince(t0) / n;
  });
}

// The least any binding does for the VM's life (bench/inproc.c's lc): one
// plain Node-API call per step, no checks and no objects, and the memory
// as an ArrayBuffer that JavaScript writes the hlt byte through.
function floorLifecycles(n, steps) {
  const { lc } = inproc;
  const step = stepper(steps);
  const t0 = now();
  for (let i = 0; i < n; i++) {
    step(-1);
    const memory = lc.memory(1 << 20);
    step(0);
    new Uint8Array(memory, 0x1000, 1)[0] = 0xf4; // hlt
    step(1);
    const vm = lc.vm();
    step(2);
    lc.slot(vm, memory);
    step(3);
    const vcpu = lc.vcpu(vm);
    step(4);
    lc.sregs(vcpu);
    step(5);
    lc.regs(vcpu);
    step(6);
    let reason = lc.run(vcpu);
    while (reason === 10) reason = lc.run(vcpu); // KVM_EXIT_INTR
    if (reason !== 5) throw new Error('floor lifecycle: no hlt exit');
    step(7);
    lc.close(vm, vcpu);
    step(8);
    lc.free(memory);
    step(9);
  }
  return usSince(t0) / n;
}

// The lifecycle through the native objects, with the ioctls of exits.c
// (and its steps, as lifecycles() in exits.mjs).
function nativeLifecycles(n, steps) {
  const kvm = Kvm.open();
  const regs = new BigUint64Array(18);
  const sregs = { bytes: new Uint8Array(SREGS_SIZE), mask: new Uint8Array(SREGS_SIZE) };
  regs[16] = 0x1000n; // rip
  regs[17] = 2n; // rflags
  const step = stepper(steps);
  try {
    const t0 = now();
    for (let i = 0; i < n; i++) {
      step(-1);
      const memory = NativeMemory.allocate(1 << 20, -1);
      step(0);
      new Uint8Array(memory.view(0x1000, 1))[0] = 0xf4; // hlt
      step(1);
      const vm = new NativeVm(kvm.native.createVm(0));
      step(2);
      vm.setUserMemoryRegion(0, 0, 0n, 1 << 20, memory.slot, 0, memory);
      step(3);
      const vcpu = new NativeVcpu(vm.createVcpu(0));
      step(4);
      sregs.mask.fill(0);
      encodeSregs(sregs.bytes, { cs: { base: 0n, selector: 0 } }, 0, sregs.mask);
      vcpu.setState('sregs', sregs.bytes, sregs.mask);
      step(5);
      vcpu.setRegs(regs);
      step(6);
      let reason = binding.runVcpu(vcpu.runSlot);
      while (reason === 10) reason = binding.runVcpu(vcpu.runSlot); // KVM_EXIT_INTR
      if (reason !== 5) throw new Error('native lifecycle: no hlt exit');
      step(7);
      vm.close();
      step(8);
      memory.close();
      step(9);
    }
    return usSince(t0) / n;
  } finally {
    kvm.close();
  }
}

// An exit figure: the C program, the same C inside Node, the floor, the
// native layer and the API, each running `kind`'s guest.
const exitFigure = (kind, name, apiLoop) => ({
  name,
  n: 20000,
  ways: {
    c: cProgram('exits', kind, EXIT_GUESTS[kind]),
    inNode: (n) => inproc[kind](n, hex(EXIT_GUESTS[kind])),
    floor: (n) => floorExits(kind, n),
    native: (n) => nativeExits(kind, n),
    api: (n) => withGuest(EXIT_GUESTS[kind], n, (g) => apiLoop(g.vcpu, n)),
  },
});

const figures = [
  exitFigure('io', 'I/O exit round trip, run()', ioExits),
  exitFigure('mmio', 'MMIO exit round trip, run()', mmioExits),
  {
    name: 'create VM + 1 MiB slot + vCPU, run to HLT, close',
    n: 60,
    ways: { c: cProgram('exits', 'lifecycle'), inNode: (n) => inproc.lifecycle(n), floor: floorLifecycles, native: nativeLifecycles, api: lifecycles },
  },
];

for (const { name, n, ways } of figures) {
  const names = Object.keys(ways);
  for (const w of names) await ways[w](Math.ceil(n / 10)); // warm-up
  const rounds = Object.fromEntries(names.map((w) => [w, []]));
  const user = Object.fromEntries(names.map((w) => [w, 0]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const w of names) {
      await turn();
      const before = cpu();
      rounds[w].push(await ways[w](n));
      user[w] += cpu().user - before.user;
    }
  }
  const us = (w) => median(rounds[w]).toFixed(2);
  const ratio = (a, b) => median(rounds[a].map((x, i) => x / rounds[b][i])).toFixed(3);
  console.log(`${name} (µs, medians of ${ROUNDS} rounds; ratios: medians of the rounds' ratios)`);
  console.log(`  C ${us('c')} | C inside Node ${us('inNode')} | node-kvm native layer ${us('native')} | node-kvm API ${us('api')}`);
  console.log(`  the process (C inside Node / C):         ${ratio('inNode', 'c')}`);
  if (rounds.floor) {
    console.log(`  any binding's least (floor / C inside Node): ${ratio('floor', 'inNode')}`);
    console.log(`  node-kvm over that least (API / floor):      ${ratio('api', 'floor')}`);
  }
  console.log(`  the native layer (native / C inside Node): ${ratio('native', 'inNode')}`);
  console.log(`  the TypeScript layer (API / native):       ${ratio('api', 'native')}`);
  console.log(`  in all (API / C):                          ${ratio('api', 'c')}`);
  // The C program's user time is its own process's: not counted here.
  const perOp = (w) => (user[w] / (ROUNDS * n)).toFixed(2);
  const floorCpu = rounds.floor ? ` | floor ${perOp('floor')}` : '';
  console.log(`  user CPU time of ${CPU_SOURCE}, µs per operation: C inside Node ${perOp('inNode')}${floorCpu} | native layer ${perOp('native')} | API ${perOp('api')}`);
}

// The VM's life step by step, the four ways that share a process: where
// each layer's time goes (step k is exits.c's STEP(k)).
const STEPS = ['memory', 'hlt byte', 'KVM_CREATE_VM', 'slot', 'vCPU', 'sregs', 'regs', 'KVM_RUN', 'close VM', 'close memory'];
const stepWays = { inNode: (n, acc) => inproc.lifecycle(n, acc), floor: floorLifecycles, native: nativeLifecycles, api: lifecycles };
const acc = Object.fromEntries(Object.keys(stepWays).map((w) => [w, new Float64Array(STEPS.length)]));
const STEP_N = 40;
for (let r = 0; r < ROUNDS; r++) {
  for (const [w, f] of Object.entries(stepWays)) {
    await turn();
    f(STEP_N, acc[w]);
  }
}
const per = (w, k) => acc[w][k] / (ROUNDS * STEP_N);
const cell = (x) => x.toFixed(1).padStart(8);
console.log(`the VM's life step by step (µs per step, means of ${ROUNDS} interleaved rounds of ${STEP_N})`);
console.log(`  ${'step'.padEnd(14)}${'C in Node'.padStart(10)}${'floor'.padStart(8)}${'native'.padStart(8)}${'API'.padStart(8)}${'floor−C'.padStart(9)}${'API−floor'.padStart(10)}${'API−native'.padStart(11)}`);
for (let k = 0; k < STEPS.length; k++) {
  const [c, f, nat, api] = ['inNode', 'floor', 'native', 'api'].map((w) => per(w, k));
  console.log(`  ${STEPS[k].padEnd(14)}  ${cell(c)}${cell(f)}${cell(nat)}${cell(api)}${cell(f - c)}  ${cell(api - f)}   ${cell(api - nat)}`);
}
const total = (w) => STEPS.reduce((t, _, k) => t + per(w, k), 0);
const [tc, tf, tn, ta] = ['inNode', 'floor', 'native', 'api'].map(total);
console.log(`  ${'all steps'.padEnd(14)}  ${cell(tc)}${cell(tf)}${cell(tn)}${cell(ta)}${cell(tf - tc)}  ${cell(ta - tf)}   ${cell(ta - tn)}`);
console.log(`  ratios of the sums: floor / C inside Node ${(tf / tc).toFixed(3)}, API / floor ${(ta / tf).toFixed(3)}, API / C inside Node ${(ta / tc).toFixed(3)}`);
