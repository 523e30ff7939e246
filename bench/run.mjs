// `npm run bench`: builds the C baselines, then runs bench/suite.mjs on the
// host's KVM when usable, otherwise in the sandbox.
//   --json       print the results as JSON on stdout, the table on stderr
//                (`npm run -s bench -- --json`: -s keeps npm's banner out)
//   --markdown   print the table as Markdown too, for README.md
//   --no-linux   skip the last row: booting Linux with examples/linux
//                (on a host with VT-x/AMD-V, else in the sandbox: ~1 min)
//   BENCH_JSON=path            also write the JSON there
//   BENCH_ROUNDS, BENCH_ROUND_MS   rounds per row and their length (bench/harness.mjs)
//   NODE_KVM_BENCH_TARGET=sandbox  use the sandbox even where the host's KVM works
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildC } from './build.mjs';
import { formatMarkdown } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
for (const a of args) if (!['--json', '--markdown', '--no-linux'].includes(a)) throw new Error(`bench: unknown option ${a}`);
const out = join(root, 'build/bench.json');

buildC();
rmSync(out, { force: true });

// With --json, stdout carries only the JSON.
const print = args.has('--json') ? (s) => process.stderr.write(s) : (s) => process.stdout.write(s);
const command = [process.execPath, 'bench/suite.mjs'];
const { probeKvm } = createRequire(import.meta.url)(join(root, 'dist/index.js'));
let exitCode;
if (probeKvm().usable && process.env.NODE_KVM_BENCH_TARGET !== 'sandbox') {
  try {
    execFileSync(command[0], command.slice(1), { cwd: root, stdio: ['ignore', args.has('--json') ? 2 : 1, 2] });
    exitCode = 0;
  } catch (e) {
    exitCode = e.status ?? 1;
  }
} else {
  print('No usable /dev/kvm here (or NODE_KVM_BENCH_TARGET=sandbox): benchmarking in the sandbox, nested KVM under TCG; absolute numbers are slow, ratios still tell.\n');
  const { runInSandbox } = await import('../sandbox/sandbox.mjs');
  const pass = Object.fromEntries(['BENCH_ROUNDS', 'BENCH_ROUND_MS'].filter((k) => process.env[k]).map((k) => [k, process.env[k]]));
  const env = { ...pass, BENCH_HOST_LOAD: readFileSync('/proc/loadavg', 'utf8').split(' ')[0], BENCH_HOST_CPUS: String(cpus().length) };
  ({ exitCode } = await runInSandbox({ command, cwd: root, env, onOutput: print }));
}
if (exitCode !== 0) process.exit(exitCode);

const result = JSON.parse(readFileSync(out, 'utf8'));
if (!args.has('--no-linux')) {
  // Booting a stock kernel has no C program beside it: the figure is the
  // example's own clock from KVM_CREATE_VM (QEMU, for scale, reaches the
  // same kernel's root-mount panic in ~7 s in the sandbox).
  const tsx = join(root, 'node_modules/.bin/tsx');
  const lines = execFileSync(tsx, ['examples/linux/boot.ts', '--json'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 }).trim().split('\n');
  const boot = JSON.parse(lines[lines.length - 1]);
  if (boot.outcome !== 'poweroff') throw new Error(`bench: the Linux guest ended with ${boot.outcome}: ${boot.detail}`);
  result.linuxBoot = { where: boot.where, kernel: boot.kernelVersion, initLineMs: boot.createVmToInitLineMs, powerOffMs: boot.createVmToEndMs, exits: boot.exitsToUserSpace };
  print(`boot Linux (examples/linux, ${boot.where}, ${boot.kernelVersion.split(' ')[0]}): KVM_CREATE_VM -> init's first line ${(boot.createVmToInitLineMs / 1000).toFixed(1)} s, -> power-off ${(boot.createVmToEndMs / 1000).toFixed(1)} s (${boot.exitsToUserSpace} exits to user space)\n`);
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
}
if (args.has('--markdown')) print(`\n${formatMarkdown(result)}\n`);
if (process.env.BENCH_JSON) copyFileSync(out, process.env.BENCH_JSON);
if (args.has('--json')) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
