// Exit round trips: node-kvm's run() and runAsync() against bench/exits.c
// doing the same ioctls, side by side in one process tree. Run via
// `npm run bench` (which picks the host's KVM or the sandbox).
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const lib = createRequire(import.meta.url)(join(root, 'dist/index.js'));
const { describeKvm, probeKvm, realModeGuest } = lib;
const N = Number(process.env.BENCH_EXITS ?? 20000);
const CODE = [0xe6, 0x80, 0x66, 0x49, 0x75, 0xfa, 0xf4]; // out 0x80, al; dec ecx; jnz; hlt

function guest(n) {
  const g = realModeGuest(CODE);
  g.vcpu.setRegs({ rcx: n });
  return g;
}

async function measure(useAsync, n) {
  const g = guest(n);
  let exits = 0;
  const t0 = process.hrtime.bigint();
  for (;;) {
    const exit = useAsync ? await g.vcpu.runAsync() : g.vcpu.run();
    if (exit.reason === 'hlt') break;
    if (exit.reason === 'io') exits++;
    else if (exit.reason !== 'intr') throw new Error(`unexpected exit ${exit.reason}`);
  }
  const us = Number(process.hrtime.bigint() - t0) / 1e3;
  g.close();
  if (exits !== n) throw new Error(`expected ${n} exits, saw ${exits}`);
  return us / exits;
}

const c = JSON.parse(execFileSync(join(root, 'build/bench-exits'), [String(N)], { encoding: 'utf8' })).usPerExit;
// A short first pass lets the JIT warm up, as it would in a long-running user.
await measure(false, N / 10);
const sync = await measure(false, N);
await measure(true, N / 10);
const async_ = await measure(true, N);
// Memory rows: KVM_GET_DIRTY_LOG of a clean 1 GiB slot, and allocating,
// registering, deleting and freeing 4 GiB, against bench/memory.c.
const M = Number(process.env.BENCH_DIRTY ?? 2000);
const cm = JSON.parse(execFileSync(join(root, 'build/bench-memory'), [String(M)], { encoding: 'utf8' }));
const { GuestMemory, Kvm, MemFlag, DirtyLog } = lib;
function dirtyLog(reuse) {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const memory = GuestMemory.allocate(2 ** 30);
  const slot = vm.addSlot({ guestPhysAddr: 0, memory, flags: MemFlag.LOG_DIRTY_PAGES });
  const into = reuse ? new Uint8Array(DirtyLog.bytesFor(slot.npages)) : undefined;
  for (let i = 0; i < M / 10; i++) slot.getDirtyLog(into);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < M; i++) slot.getDirtyLog(into);
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / M;
  vm.close();
  memory.close();
  kvm.close();
  return us;
}
function slot4g() {
  const kvm = Kvm.open();
  const vm = kvm.createVm();
  const m = Math.floor(M / 100) + 5;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < m; i++) {
    const memory = GuestMemory.allocate(4 * 2 ** 30);
    vm.addSlot({ slot: 1, guestPhysAddr: 2 ** 32, memory }).delete();
    memory.close();
  }
  const us = Number(process.hrtime.bigint() - t0) / 1e3 / m;
  vm.close();
  kvm.close();
  return us;
}
const dirtyNew = dirtyLog(false);
const dirtyReused = dirtyLog(true);
const slot = slot4g();

console.log(`KVM: ${describeKvm(probeKvm())}${process.env.NODE_KVM_IN_SANDBOX ? ' (sandbox)' : ''}; ${N} port-I/O exits, ${M} dirty-log reads`);
const rows = [
  ['I/O exit round trip, run()', c, sync, 1.05],
  ['I/O exit round trip, runAsync()', c, async_, 1.5],
  ['KVM_GET_DIRTY_LOG, clean 1 GiB slot', cm.dirtyLogUs, dirtyNew, 1.2],
  ['  the same into a reused bitmap', cm.dirtyLogUs, dirtyReused, 1.2],
  ['allocate + register + delete 4 GiB', cm.slot4gUs, slot, 1.2],
];
console.log(`${'figure'.padEnd(38)} ${'C µs'.padStart(9)} ${'node-kvm µs'.padStart(12)} ${'ratio'.padStart(7)}  goal`);
for (const [name, cv, nv, goal] of rows) {
  const ratio = nv / cv;
  console.log(`${name.padEnd(38)} ${cv.toFixed(2).padStart(9)} ${nv.toFixed(2).padStart(12)} ${ratio.toFixed(2).padStart(6)}x  <= ${goal} ${ratio <= goal ? 'met' : 'not met'}`);
}
