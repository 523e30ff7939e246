// `npm run test:asan`: the addon built with AddressSanitizer and
// UndefinedBehaviorSanitizer, then the host integration suite and a fuzz
// run against it. Node itself is not instrumented, so the runtime is
// preloaded; leak checking is off (Node keeps memory until exit on purpose).
// Any report fails the run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'build-asan');
const addon = join(dir, 'build/Release/node_kvm.node');

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...options });
  return r.status ?? 1;
}

function runtime(name) {
  const r = spawnSync('gcc', [`-print-file-name=${name}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  if (r.status !== 0 || !existsSync(path)) {
    console.error(`node-kvm: ${name} not found; it comes with g++ (apt-get install g++)`);
    process.exit(2);
  }
  return path;
}

// The same targets as binding.gyp, with sanitizer flags, built out of tree.
const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
const target = gyp.targets[0];
const flags = ['-fsanitize=address,undefined', '-fno-omit-frame-pointer', '-fno-sanitize-recover=undefined', '-g', '-O1'];
target.sources = target.sources.map((s) => join('..', s));
target.cflags_cc = [...target.cflags_cc, ...flags];
target.ldflags = [...(target.ldflags ?? []), '-fsanitize=address,undefined'];
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'binding.gyp'), JSON.stringify(gyp, null, 2));
const prefix = dirname(dirname(process.execPath));
const nodedir = existsSync(join(prefix, 'include/node/node_api.h')) ? [`--nodedir=${prefix}`] : [];
const npmGyp = join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
console.log('=== building the addon with ASan and UBSan (build-asan/) ===');
if (run(process.execPath, [npmGyp, 'rebuild', '--jobs', 'max', ...nodedir], { cwd: dir }) !== 0) process.exit(1);

const env = {
  ...process.env,
  NODE_KVM_ADDON: addon,
  LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so')].join(':'),
  // Node's own allocations are not leaks; the addon's fds and mappings are
  // checked by the lifecycle tests instead.
  ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=99:verify_asan_link_order=0',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=98',
};

// The integration files this host's KVM can run (as `npm test` places them).
const { features, lacks, parseTag } = await import('./test-plan.mjs');
const lib = (await import('node:module')).createRequire(import.meta.url)(join(root, 'dist/index.js'));
const probe = lib.probeKvm();
if (!probe.usable) {
  console.error(`node-kvm: no usable /dev/kvm here (${probe.reason}); run this inside the sandbox: node sandbox/cli.mjs -- npm run test:asan`);
  process.exit(2);
}
const feats = features(probe);
const files = readdirSync(join(root, 'test/integration'), { recursive: true })
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => parseTag(`test/integration/${f}`, readFileSync(join(root, 'test/integration', f), 'utf8')))
  .filter((f) => lacks(f, feats).length === 0)
  .map((f) => f.file);

console.log(`\n=== host integration suite under ASan/UBSan (${files.length} files) ===`);
const tests = run(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', ...files], { env });
let fuzz = 0;
if (existsSync(join(root, 'scripts/fuzz.mjs'))) {
  console.log('\n=== fuzz under ASan/UBSan ===');
  fuzz = run(process.execPath, [join(root, 'scripts/fuzz.mjs'), '--calls', process.env.NODE_KVM_FUZZ_CALLS ?? '20000'], { env });
}
console.log(`\nASan/UBSan: integration ${tests === 0 ? 'clean' : `FAILED (${tests})`}, fuzz ${fuzz === 0 ? 'clean' : `FAILED (${fuzz})`}`);
process.exit(tests || fuzz ? 1 : 0);
