// `npm run bench`: builds the C baseline, then runs the benchmarks on the
// host's KVM when usable, otherwise in the sandbox.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(root, 'build'), { recursive: true });
for (const name of ['exits', 'memory']) {
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', join(root, `build/bench-${name}`), join(root, `bench/${name}.c`)], { stdio: 'inherit' });
}

const { probeKvm } = createRequire(import.meta.url)(join(root, 'dist/index.js'));
const command = [process.execPath, 'bench/exits.mjs'];
if (probeKvm().usable && process.env.NODE_KVM_BENCH_TARGET !== 'sandbox') {
  execFileSync(command[0], command.slice(1), { cwd: root, stdio: 'inherit' });
} else {
  console.log('No usable /dev/kvm here: benchmarking in the sandbox (nested KVM under TCG: absolute numbers are slow, ratios still tell).');
  const { runInSandbox } = await import('../sandbox/sandbox.mjs');
  const r = await runInSandbox({ command, cwd: root, env: { BENCH_EXITS: process.env.BENCH_EXITS ?? '2000' } });
  process.exit(r.exitCode);
}
