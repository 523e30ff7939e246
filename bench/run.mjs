// `npm run bench`: builds the C baselines, then runs bench/suite.mjs on the
// host's KVM when usable, otherwise in the sandbox.
//   --json       print the results as JSON on stdout, the table on stderr
//                (`npm run -s bench -- --json`: -s keeps npm's banner out)
//   --markdown   print the table as Markdown too, for README.md
//   BENCH_JSON=path            also write the JSON there
//   BENCH_ROUNDS, BENCH_ROUND_MS   rounds per row and their length (bench/harness.mjs)
//   NODE_KVM_BENCH_TARGET=sandbox  use the sandbox even where the host's KVM works
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatMarkdown } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
for (const a of args) if (a !== '--json' && a !== '--markdown') throw new Error(`bench: unknown option ${a}`);
const out = join(root, 'build/bench.json');

mkdirSync(join(root, 'build'), { recursive: true });
for (const name of ['exits', 'memory', 'fastpaths']) {
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-o', join(root, `build/bench-${name}`), join(root, `bench/${name}.c`)], { stdio: 'inherit' });
}
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
if (args.has('--markdown')) print(`\n${formatMarkdown(result)}\n`);
if (process.env.BENCH_JSON) copyFileSync(out, process.env.BENCH_JSON);
if (args.has('--json')) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
