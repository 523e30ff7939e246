// The table of `npm run bench`, as text and as Markdown (for README.md),
// from the JSON that bench/suite.mjs writes.

const num = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

// `x` is the sign of a factor: "x" in the terminal, "×" in Markdown.
function cells(row, x) {
  if (row.skipped) return { c: '—', js: '—', ratio: '—', spread: '', note: `skipped: ${row.skipped}` };
  const times = (f) => `${f.toFixed(2)}${x}`;
  const note = row.speedup ? `vs ${row.speedup.versus}: C ${times(row.speedup.c)} faster, node-kvm ${times(row.speedup.js)}` : '';
  const spread = row.spread ? `${row.spread[0].toFixed(2)}-${row.spread[1].toFixed(2)}` : '';
  return { c: num(row.c), js: num(row.js), ratio: times(row.ratio), spread, note };
}

export function header(r) {
  const where = r.target === 'sandbox' ? 'in the sandbox (nested KVM under TCG)' : "on the host's KVM";
  const load = `${r.target === 'sandbox' ? 'host ' : ''}load ${r.load.toFixed(2)} at start (${r.idle ? 'looks idle' : 'busy: expect noise'})`;
  const pinned = r.rows.some((row) => row.pinned !== undefined) ? "; rows marked * ran both sides on one CPU (node-kvm's main thread and the C program)" : '';
  return `KVM: ${r.kvm}, ${where}; ${load}, ${r.cpus} CPU${r.cpus === 1 ? '' : 's'}, Node ${r.node}; ${r.rounds} interleaved rounds of ~${r.roundMs} ms; each side's median, the median of the rounds' ratios and their quartiles (spread)${pinned}`;
}

export function formatTable(r) {
  const w = Math.max(...r.rows.map((row) => row.name.length)) + 2;
  const line = (name, c, js, ratio, spread, goal, note = '') =>
    `${name.padEnd(w)}  ${c.padStart(8)}  ${js.padStart(11)}  ${ratio.padStart(6)}  ${spread.padEnd(9)}  ${goal.padEnd(16)} ${note}`.trimEnd();
  const out = [header(r), line('figure', 'C µs', 'node-kvm µs', 'ratio', 'spread', 'goal')];
  for (const row of r.rows) {
    if (row.section) out.push(row.section);
    const x = cells(row, 'x');
    const goal = row.goal === null || row.skipped ? '—' : `<= ${row.goal} ${row.ratio <= row.goal ? 'met' : 'NOT met'}`;
    out.push(line(`${row.name}${row.pinned !== undefined ? ' *' : ''}`, x.c, x.js, x.ratio, x.spread, goal, x.note));
  }
  return out.join('\n');
}

export function formatMarkdown(r) {
  const out = [header(r), '', '| figure | C µs | node-kvm µs | ratio | spread | goal | |', '| --- | --- | --- | --- | --- | --- | --- |'];
  for (const row of r.rows) {
    if (row.section) out.push(`| *${row.section}* | | | | | | |`);
    const x = cells(row, '×');
    const goal = row.goal === null || row.skipped ? '—' : `≤ ${row.goal}`;
    out.push(`| ${row.name.trim()}${row.pinned !== undefined ? ' \\*' : ''} | ${x.c} | ${x.js} | ${x.ratio} | ${x.spread} | ${goal} | ${x.note} |`);
  }
  return out.join('\n');
}
