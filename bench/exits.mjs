// Exit round trips: node-kvm's run() and runAsync() against bench/exits.c
// doing the same ioctls, side by side in one process tree. Run via
// `npm run bench` (which picks the host's KVM or the sandbox).
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { describeKvm, probeKvm, realModeGuest } = createRequire(import.meta.url)(join(root, 'dist/index.js'));
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
console.log(`KVM: ${describeKvm(probeKvm())}${process.env.NODE_KVM_IN_SANDBOX ? ' (sandbox)' : ''}; ${N} port-I/O exits each`);
console.log('                       µs/exit   ratio to C');
for (const [name, v] of [['C (bench/exits.c)', c], ['node-kvm run()', sync], ['node-kvm runAsync()', async_]]) {
  console.log(`${name.padEnd(22)} ${v.toFixed(2).padStart(8)}   ${(v / c).toFixed(2).padStart(6)}x`);
}
