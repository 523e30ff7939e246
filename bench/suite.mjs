// Runs every row of `npm run bench` where it is (bench/run.mjs chooses the
// host or the sandbox), prints the table and writes build/bench.json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { compare, inSandbox, lib, root, ROUND_MS, ROUNDS } from './harness.mjs';
import { rows as exitRows } from './exits.mjs';
import { rows as memoryRows } from './memory.mjs';
import { closeWorker, rows as fastRows, section as fastSection } from './fastpaths.mjs';
import { formatTable } from './report.mjs';

const { Cap, describeKvm, Kvm, probeKvm } = lib;

// In the sandbox the load that matters is the host's, where QEMU runs.
const load = Number(process.env.BENCH_HOST_LOAD ?? readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const hostCpus = Number(process.env.BENCH_HOST_CPUS ?? cpus().length);
const kvm = Kvm.open();
const has = (cap) => kvm.checkExtension(Cap[cap]) > 0;

const plan = [
  ...exitRows,
  ...memoryRows,
  ...fastRows.map((row, i) => (i === 0 ? { ...row, section: fastSection } : row)),
];

const results = [];
for (const row of plan) {
  const { id, name, goal, section, baseline } = row;
  const entry = { id, name, goal, section, baseline };
  results.push(entry);
  if (row.needs && !has(row.needs)) {
    entry.skipped = `KVM_CAP_${row.needs} is 0`;
    continue;
  }
  process.stderr.write(`${name.trim()}: `);
  const m = await compare(row);
  Object.assign(entry, m);
  process.stderr.write(`C ${m.c.toFixed(2)} µs (n=${m.n.c}), node-kvm ${m.js.toFixed(2)} µs (n=${m.n.js})\n`);
}
await closeWorker();
kvm.close();
for (const entry of results) {
  const base = results.find((r) => r.id === entry.baseline?.id);
  if (base && !base.skipped && !entry.skipped) entry.speedup = { versus: entry.baseline.versus, c: base.c / entry.c, js: base.js / entry.js };
}

const result = {
  kvm: describeKvm(probeKvm()),
  target: inSandbox ? 'sandbox' : 'host',
  load,
  idle: load < 0.25 * hostCpus,
  cpus: cpus().length,
  node: process.version,
  rounds: ROUNDS,
  roundMs: ROUND_MS,
  date: new Date().toISOString(),
  rows: results,
};
mkdirSync(join(root, 'build'), { recursive: true });
writeFileSync(join(root, 'build/bench.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(formatTable(result));
