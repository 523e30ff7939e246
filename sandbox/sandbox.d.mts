// Types of sandbox.mjs's public API, for TypeScript users of the module (who
// import "./sandbox/sandbox.mjs" or "node-kvm/sandbox": TypeScript reads this
// file in its place) and for sandbox.mjs's own JSDoc, which imports them from
// here. `npx tsc -p sandbox/tsconfig.json` checks that sandbox.mjs implements
// exactly what this file declares. See sandbox/README.md.

/**
 * Guest kernel module parameters for insmod, by module and parameter name,
 * e.g. `{ kvm: { tdp_mmu: 0 }, kvm_amd: { npt: 0 } }`. `true`/`false` are
 * passed as 1/0. Only modules the sandbox loads may be named.
 */
export type ModuleParams = Record<string, Record<string, string | number | boolean>>;

/** Options of {@link runInSandbox}. */
export interface SandboxOptions {
  /** argv to run (looked up on PATH), in `cwd`; required, non-empty. */
  command: string[];
  /** Host directory shared read-write at the same path, the command's cwd (default `process.cwd()`). */
  cwd?: string | undefined;
  /**
   * Extra environment variables for the command, on top of the few the
   * sandbox passes (see README); an `undefined` value removes one of those.
   */
  env?: Record<string, string | undefined> | undefined;
  /** vmlinuz to boot (env `NODE_KVM_SANDBOX_KERNEL`; default: the newest `/boot/vmlinuz-*` with kvm-amd modules). */
  kernel?: string | undefined;
  /** Guest RAM in MiB, a positive integer (default 2048; env `NODE_KVM_SANDBOX_MEMORY`). */
  memoryMb?: number | undefined;
  /** Guest vCPUs, a positive integer (default 1; env `NODE_KVM_SANDBOX_CPUS`). */
  cpus?: number | undefined;
  /** insmod parameters (env `NODE_KVM_SANDBOX_PARAMS="kvm.tdp_mmu=0 kvm_amd.npt=0"`, used when this is not given). */
  moduleParams?: ModuleParams | undefined;
  /** Limit until the command starts, ms (default 120 000; env `NODE_KVM_SANDBOX_BOOT_TIMEOUT`). */
  bootTimeoutMs?: number | undefined;
  /** Limit for the whole run, ms (default 1 800 000; env `NODE_KVM_SANDBOX_TIMEOUT`). */
  timeoutMs?: number | undefined;
  /** Receives the command's stdout and stderr, merged (default: written to `process.stdout`). */
  onOutput?: ((chunk: string) => void) | undefined;
  /** Echo the guest init's, kernel's and QEMU's messages to stderr (env `NODE_KVM_SANDBOX_VERBOSE=1`). */
  verbose?: boolean | undefined;
  /** Aborting kills the VM and rejects with an error named `AbortError`. */
  signal?: AbortSignal | undefined;
}

/** The sandbox's KVM as the guest reported it, and how the run went. */
export interface SandboxInfo {
  /** Guest `uname -r`; null if the guest's info file could not be read. */
  kernelRelease: string | null;
  /** The vendor KVM module that was loaded. */
  vendorModule: 'kvm_amd' | 'kvm_intel' | null;
  /**
   * `kvm_amd.npt` as 1/0 (the parameter's text if it is neither Y/N nor an
   * integer); null if the module is not loaded.
   */
  npt: number | string | null;
  /** `kvm.tdp_mmu` as 1/0, like {@link npt}. */
  tdpMmu: number | string | null;
  /**
   * ms from starting QEMU until the command started; null if the guest's
   * ready mark was lost on the console (then `runMs` counts from QEMU's start).
   */
  bootMs: number | null;
  /** Guest kernel uptime, ms, when KVM was ready; null if unknown. */
  guestUptimeAtReadyMs: number | null;
  /** ms from the command's start until QEMU exited. */
  runMs: number;
  /** The vmlinuz used. */
  kernel: string;
  /** `pvh`: booted the cached, unpacked ELF kernel; `bzImage`: the vmlinuz itself. */
  bootProtocol: 'pvh' | 'bzImage';
  cpus: number;
  memoryMb: number;
  /** Every readable `/sys/module/{kvm,kvm_amd}/parameters/*`, as the guest reports it. */
  moduleParams: Record<string, Record<string, string>>;
  /** The cached files used, and whether they were already there. */
  cache: {
    initramfs: string;
    initramfsCached: boolean;
    /** null when the bzImage was booted. */
    kernelElf: string | null;
    kernelElfCached: boolean | null;
  };
}

/** What {@link runInSandbox} resolves with. */
export interface SandboxResult {
  /** The command's exit status: 128+n if a signal killed it, 127 if it was not found. */
  exitCode: number;
  info: SandboxInfo;
}

/** A duration's unit: milliseconds, seconds, minutes, hours. */
export type DurationUnit = 'ms' | 's' | 'm' | 'h';

/**
 * Runs `opts.command` inside the sandbox VM and resolves with its exit status.
 * Rejects (never hangs) if the VM cannot boot, KVM cannot be set up, or a
 * timeout expires.
 */
export function runInSandbox(opts: SandboxOptions): Promise<SandboxResult>;

/**
 * `"90000ms"`, `"90s"`, `"1.5m"`, `"1h"` -> milliseconds; a bare number is in
 * `unit` (default ms). Throws, naming `what`, if it is not a positive duration.
 */
export function parseDuration(s: string | number, what: string, unit?: DurationUnit): number;

/**
 * `"kvm.tdp_mmu=0 kvm_amd.npt=0"` -> `{ kvm: { tdp_mmu: '0' }, kvm_amd: { npt: '0' } }`.
 * Throws, naming `what`, on a token that is not `module.param=value`.
 */
export function parseParamString(s: string, what?: string): Record<string, Record<string, string>>;
