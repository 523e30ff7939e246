import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { KvmError } from '../core/errors';
import { Kvm } from '../core/kvm';
import { realModeGuest } from '../guest/fixture';
import { traceUnavailable } from './trace';
import type { GuestDebugOptions } from '../core/vcpu';
import { validateObject, validateString } from '../core/validate';

/** Which KVM backend module drives `/dev/kvm`. */
export type VendorModule = 'kvm_intel' | 'kvm_amd' | 'kvm_pvm' | 'unknown';

/** What {@link probeKvm} found out about this machine's KVM. */
export interface KvmProbe {
  /** True when `/dev/kvm` opened and a VM could be created in it. */
  usable: boolean;
  /** Why not, when `usable` is false. */
  reason?: string;
  /** The errno name of the failure, when there was one (`'ENOENT'`...). */
  code?: string;
  /** The vendor module loaded (from `/sys/module`). */
  vendorModule: VendorModule;
  /**
   * Two-dimensional paging: EPT on Intel (`kvm_intel.ept`), NPT on AMD
   * (`kvm_amd.npt`); false means shadow paging.
   */
  tdp: boolean;
  /** KVM's TDP MMU (`kvm.tdp_mmu`); false means the legacy MMU. */
  tdpMmu: boolean;
  /** `uname -r` of the kernel that runs KVM. */
  kernel: string;
  /**
   * Whether hardware breakpoints set through `KVM_SET_GUEST_DEBUG` stop a
   * guest, found by running one (false when KVM is unusable). Nested KVM
   * under QEMU's emulator ignores them.
   */
  hwBreakpoints: boolean;
  /** Whether guest `int3` exits as `debug` with software breakpoints on, found by running one. */
  swBreakpoints: boolean;
  /** Whether {@link MmuTrace} can record here (root, tracefs, kvmmmu events). */
  mmuTrace: boolean;
}

function param(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

const on = (v: string | undefined): boolean => v === 'Y' || v === '1' || v === 'y';

/**
 * Finds out whether KVM is usable here, by opening `/dev/kvm` and creating
 * a VM (never by guessing from the machine), and which MMU it uses, from
 * the module parameters in `/sys/module`.
 */
export function probeKvm(path = '/dev/kvm'): KvmProbe {
  validateString(path, 'path', { noNul: true });
  const sys = '/sys/module';
  const vendorModule: VendorModule = existsSync(`${sys}/kvm_intel`)
    ? 'kvm_intel'
    : existsSync(`${sys}/kvm_amd`)
      ? 'kvm_amd'
      : existsSync(`${sys}/kvm_pvm`)
        ? 'kvm_pvm'
        : 'unknown';
  const tdp =
    vendorModule === 'kvm_intel'
      ? on(param(`${sys}/kvm_intel/parameters/ept`))
      : vendorModule === 'kvm_amd'
        ? on(param(`${sys}/kvm_amd/parameters/npt`))
        : false;
  const base = {
    vendorModule,
    tdp,
    tdpMmu: tdp && on(param(`${sys}/kvm/parameters/tdp_mmu`)),
    kernel: release(),
    mmuTrace: traceUnavailable() === undefined,
  };
  let kvm: Kvm;
  try {
    kvm = Kvm.open(path);
    kvm.createVm({ tssAddr: null }).close();
  } catch (e) {
    const err = e as Error;
    return {
      usable: false,
      reason: err.message,
      ...(e instanceof KvmError ? { code: e.code } : {}),
      ...base,
      hwBreakpoints: false,
      swBreakpoints: false,
    };
  }
  try {
    return {
      usable: true,
      ...base,
      hwBreakpoints: breakpointStops(kvm, [0x90, 0x90, 0xf4], { breakpoints: [0x1001] }),
      swBreakpoints: breakpointStops(kvm, [0x90, 0xcc, 0xf4], { softwareBreakpoints: true }),
    };
  } finally {
    kvm.close();
  }
}

// Runs real-mode `code` at 0x1000 with guest debugging set up: does it stop
// with a debug exit at 0x1001 (the second instruction)?
function breakpointStops(kvm: Kvm, code: number[], debug: GuestDebugOptions): boolean {
  using g = realModeGuest(code, { kvm, memorySize: 0x2000 });
  g.vcpu.setGuestDebug(debug);
  let exit = g.vcpu.run();
  while (exit.reason === 'intr') exit = g.vcpu.run();
  return exit.reason === 'debug' && exit.pc === 0x1001n;
}

/** One line for logs: `kvm_amd, npt=on, tdp_mmu=on, breakpoints hw off sw on, kernel 6.1.0`. */
export function describeKvm(p: KvmProbe): string {
  validateObject(p, 'p', ['usable', 'reason', 'code', 'vendorModule', 'tdp', 'tdpMmu', 'kernel', 'hwBreakpoints', 'swBreakpoints', 'mmuTrace']);
  const tdpName = p.vendorModule === 'kvm_intel' ? 'ept' : p.vendorModule === 'kvm_amd' ? 'npt' : 'tdp';
  const bps = p.usable ? `, breakpoints hw ${p.hwBreakpoints ? 'on' : 'off'} sw ${p.swBreakpoints ? 'on' : 'off'}` : '';
  return `${p.vendorModule}, ${tdpName}=${p.tdp ? 'on' : 'off'}, tdp_mmu=${p.tdpMmu ? 'on' : 'off'}${bps}, kernel ${p.kernel}`;
}
