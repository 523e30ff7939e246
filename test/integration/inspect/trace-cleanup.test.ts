// kvm-test: needs=mmu_trace
// MmuTrace's tracefs instances (tracing on, a 16 MiB buffer per CPU) must not
// outlive their process: removed on exit, process.exit(), fatal signals and
// uncaught exceptions, and swept by pid on the next start after a SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MmuTrace } from '../../../lib';

const DIST = path.join(__dirname, '../../../dist/index.js');
const INSTANCES = ['/sys/kernel/tracing/instances', '/sys/kernel/debug/tracing/instances'].find((d) => existsSync(d))!;

/** This pid's instances (node-kvm-<pid>-<n>). */
const instancesOf = (pid: number) => readdirSync(INSTANCES).filter((d) => d.startsWith(`node-kvm-${pid}-`));

interface Child {
  proc: ChildProcess;
  /** Resolves once the child has started its trace, with the instance names it saw then. */
  started: Promise<string[]>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

/** Runs `body` in a child node after it has started an MmuTrace it never stops. */
function child(body: string): Child {
  const script = `
    const { MmuTrace } = require(${JSON.stringify(DIST)});
    MmuTrace.start();
    const fs = require('node:fs');
    const mine = fs.readdirSync(${JSON.stringify(INSTANCES)}).filter((d) => d.startsWith('node-kvm-' + process.pid + '-'));
    fs.writeSync(1, 'STARTED ' + JSON.stringify(mine) + '\\n');
    ${body}
  `;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const started = new Promise<string[]>((resolve, reject) => {
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      const m = /STARTED (.*)\n/.exec(out);
      if (m) resolve(JSON.parse(m[1]!) as string[]);
    });
    proc.on('exit', () => reject(new Error(`child exited before starting its trace: ${stderr}`)));
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { proc, started, exited };
}

describe('MmuTrace instances do not outlive their process', () => {
  it('are removed when the process calls process.exit() without stopping its trace', async () => {
    const c = child('process.exit(0);');
    expect(await c.started).toHaveLength(1);
    expect((await c.exited).code).toBe(0);
    expect(instancesOf(c.proc.pid!)).toEqual([]);
  });

  it('are removed on SIGTERM when nothing else listens, and the process still dies of it', async () => {
    const c = child('setInterval(() => {}, 1000);');
    expect(await c.started).toHaveLength(1);
    c.proc.kill('SIGTERM');
    const { code, signal } = await c.exited;
    // As Node without the cleanup: killed by SIGTERM (a shell reports 143).
    expect(signal === 'SIGTERM' || code === 143).toBe(true);
    expect(instancesOf(c.proc.pid!)).toEqual([]);
  });

  it("leave a program's own SIGTERM handler in charge, and are removed when it exits", async () => {
    const c = child(`
      process.on('SIGTERM', () => setTimeout(() => process.exit(7), 50));
      setInterval(() => {}, 1000);
    `);
    expect(await c.started).toHaveLength(1);
    c.proc.kill('SIGTERM');
    expect((await c.exited).code).toBe(7);
    expect(instancesOf(c.proc.pid!)).toEqual([]);
  });

  it('are removed on an uncaught exception', async () => {
    const c = child("setTimeout(() => { throw new Error('boom'); }, 10);");
    expect(await c.started).toHaveLength(1);
    const { code, stderr } = await c.exited;
    expect(code).toBe(1);
    expect(stderr).toMatch(/boom/);
    expect(instancesOf(c.proc.pid!)).toEqual([]);
  });

  it('are left behind by SIGKILL, and swept by the next MmuTrace.start() of any process', async () => {
    const c = child('setInterval(() => {}, 1000);');
    const [name] = await c.started;
    c.proc.kill('SIGKILL');
    expect((await c.exited).signal).toBe('SIGKILL');
    expect(instancesOf(c.proc.pid!)).toEqual([name]);

    const trace = MmuTrace.start();
    try {
      expect(instancesOf(c.proc.pid!)).toEqual([]);
      expect(instancesOf(process.pid)).toHaveLength(1);
    } finally {
      trace.stop();
    }
    expect(instancesOf(process.pid)).toEqual([]);
  });
});
