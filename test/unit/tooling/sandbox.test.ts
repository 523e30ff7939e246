// The sandbox runner's failure paths, which must be clear and quick, never
// a hang. (Its success path is every integration run in the sandbox.)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

// The sandbox is an ES module, which TypeScript does not let this file (to it
// CommonJS) import statically; import() gives it the types of sandbox.d.mts.
type Sandbox = typeof import('../../../sandbox/sandbox.mjs', { with: { 'resolution-mode': 'import' } });
let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = await import('../../../sandbox/sandbox.mjs');
});

describe('sandbox runner', () => {
  it('fails fast with a clear error for a kernel that does not exist', async () => {
    const t0 = Date.now();
    await expect(sandbox.runInSandbox({ command: ['true'], kernel: '/nonexistent/vmlinuz' })).rejects.toThrow(/nonexistent\/vmlinuz/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('gives up on a boot that takes too long, with the console tail, instead of hanging', async () => {
    const err = (await sandbox.runInSandbox({ command: ['true'], bootTimeoutMs: 300, onOutput: () => {} }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/could not boot the VM within 300 ms/);
  });

  it('parses module parameters and durations as the environment gives them', () => {
    expect(sandbox.parseParamString('kvm.tdp_mmu=0 kvm_amd.npt=0')).toEqual({ kvm: { tdp_mmu: '0' }, kvm_amd: { npt: '0' } });
    expect(() => sandbox.parseParamString('npt=0')).toThrow(/module/);
    expect(sandbox.parseDuration('90s', 'timeout')).toBe(90_000);
    expect(sandbox.parseDuration('2m', 'timeout')).toBe(120_000);
    expect(sandbox.parseDuration('1500', 'timeout')).toBe(1500);
  });

  it('removes its control dir after a failed boot, and sweeps those of runners that died', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'sandbox-test-'));
    const saved = process.env.TMPDIR;
    // A runner killed outright (here: a process that has exited) and one still alive (pid 1).
    const deadPid = spawnSync('true').pid!;
    mkdirSync(path.join(tmp, `node-kvm-sandbox-${deadPid}-AbC123`));
    mkdirSync(path.join(tmp, 'node-kvm-sandbox-1-AbC123'));
    const seen = new Set<string>();
    const watch = setInterval(() => readdirSync(tmp).forEach((n) => seen.add(n)), 10);
    try {
      process.env.TMPDIR = tmp;
      await expect(sandbox.runInSandbox({ command: ['true'], bootTimeoutMs: 300, onOutput: () => {} })).rejects.toThrow(/could not boot/);
      clearInterval(watch);
      // It did make one, named with its pid, and removed it.
      expect([...seen].filter((n) => n.startsWith(`node-kvm-sandbox-${process.pid}-`))).toHaveLength(1);
      expect(readdirSync(tmp)).toEqual(['node-kvm-sandbox-1-AbC123']);
    } finally {
      clearInterval(watch);
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('removes its control dir and stops QEMU when the CLI gets SIGTERM, exiting with 143', async () => {
    const r = await signalDuringRun([path.join(ROOT, 'sandbox/cli.mjs'), '--', 'sleep', '100'], 'booted');
    expect(r.code).toBe(143);
    expect(r.leftover).toEqual([]);
    expect(r.qemuAlive).toBe(false);
  });

  it('removes its control dir and stops QEMU when a library user without handlers gets SIGTERM, which still kills it', async () => {
    const script = `import { runInSandbox } from ${JSON.stringify(path.join(ROOT, 'sandbox/sandbox.mjs'))};
      await runInSandbox({ command: ['sleep', '100'], onOutput: () => {} });`;
    const r = await signalDuringRun(['--input-type=module', '-e', script], 'qemu');
    // As Node without the sandbox's listener: killed by the signal.
    expect(r.signal === 'SIGTERM' || r.code === 143).toBe(true);
    expect(r.leftover).toEqual([]);
    expect(r.qemuAlive).toBe(false);
  });
});

const ROOT = path.join(__dirname, '../../..');

/** The pid of the QEMU whose command line names `dir`, if one runs. */
function qemuUsing(dir: string): number | undefined {
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const state = /\) (\w)/.exec(readFileSync(`/proc/${p}/stat`, 'utf8'))?.[1];
      if (state !== 'Z' && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) return Number(p);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * Runs node with `args` and TMPDIR set to a fresh directory, sends SIGTERM
 * once QEMU runs (`qemu`) or the guest has booted (`booted`: its info file
 * is in the control dir), and reports how the process ended and what it left.
 */
async function signalDuringRun(args: string[], when: 'qemu' | 'booted') {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sandbox-test-'));
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let qemu: number | undefined;
  try {
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the sandbox ended before the signal: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`the sandbox did not get ready to be signalled: ${stderr}`);
      qemu = qemuUsing(tmp);
      const ctl = readdirSync(tmp).find((n) => n.startsWith('node-kvm-sandbox-'));
      if (qemu && (when === 'qemu' || (ctl && existsSync(path.join(tmp, ctl, 'info'))))) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGTERM');
    const { code, signal } = await exited;
    // A killed QEMU may take a moment to be gone.
    for (let i = 0; i < 40 && qemuUsing(tmp); i++) await new Promise((r) => setTimeout(r, 50));
    return { code, signal, leftover: readdirSync(tmp), qemuAlive: qemuUsing(tmp) !== undefined, stderr };
  } finally {
    child.kill('SIGKILL');
    const stray = qemuUsing(tmp);
    if (stray) process.kill(stray, 'SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
}
