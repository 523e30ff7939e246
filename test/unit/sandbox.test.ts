// The sandbox runner's failure paths, which must be clear and quick, never
// a hang. (Its success path is every integration run in the sandbox.)
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain ESM module without types
import { parseDuration, parseParamString, runInSandbox } from '../../sandbox/sandbox.mjs';

describe('sandbox runner', () => {
  it('fails fast with a clear error for a kernel that does not exist', async () => {
    const t0 = Date.now();
    await expect(runInSandbox({ command: ['true'], kernel: '/nonexistent/vmlinuz' })).rejects.toThrow(/nonexistent\/vmlinuz/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('gives up on a boot that takes too long, with the console tail, instead of hanging', async () => {
    const err = (await runInSandbox({ command: ['true'], bootTimeoutMs: 300, onOutput: () => {} }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/could not boot the VM within 300 ms/);
  });

  it('parses module parameters and durations as the environment gives them', () => {
    expect(parseParamString('kvm.tdp_mmu=0 kvm_amd.npt=0')).toEqual({ kvm: { tdp_mmu: '0' }, kvm_amd: { npt: '0' } });
    expect(() => parseParamString('npt=0')).toThrow(/module/);
    expect(parseDuration('90s', 'timeout')).toBe(90_000);
    expect(parseDuration('2m', 'timeout')).toBe(120_000);
    expect(parseDuration('1500', 'timeout')).toBe(1500);
  });
});
