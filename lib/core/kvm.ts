import { constants as osConstants } from 'node:os';
import { KvmError } from './errors';
import { binding, NativeVm, type MsrEntry, type NativeKvm } from './binding';
import { KVM_API_VERSION, Cap } from './constants';
import type { CpuidEntry } from './cpuid';
import { Vm } from './vm';
import { own, validateArray, validateInteger, validateOptions, validateString, validateU32, validateU64 } from './validate';

/** Options for {@link Kvm.createVm}. */
export interface CreateVmOptions {
  /** `KVM_CREATE_VM` machine type; 0 (the default) is the plain x86 VM. */
  type?: number;
  /**
   * Guest-physical address of the 3-page TSS area plus the identity-map
   * page after it, which Intel hosts need to run real-mode guests. Default
   * 0xfffbc000 (as QEMU uses); `null` to skip.
   */
  tssAddr?: bigint | number | null;
}

/**
 * The KVM subsystem (`/dev/kvm`): capabilities and VM creation.
 *
 * ```ts
 * using kvm = Kvm.open();
 * using vm = kvm.createVm();
 * ```
 */
export class Kvm {
  /** @internal */
  readonly native: NativeKvm;
  #cpuid: readonly Readonly<CpuidEntry>[] | undefined;

  private constructor(native: NativeKvm) {
    this.native = native;
  }

  /**
   * Opens `/dev/kvm` (`O_RDWR | O_CLOEXEC`) and checks that the API version
   * is 12. Throws a `KvmError` whose message says what to do when the device
   * is missing (`ENOENT`) or not accessible (`EACCES`).
   */
  static open(path = '/dev/kvm'): Kvm {
    validateString(path, 'path', { noNul: true });
    const native = new binding.Kvm(path);
    const version = native.apiVersion();
    if (version !== KVM_API_VERSION) {
      native.close();
      throw new KvmError(osConstants.errno.EPROTO, 'KVM_GET_API_VERSION', `the kernel speaks KVM API ${version}; node-kvm needs ${KVM_API_VERSION}`);
    }
    return new Kvm(native);
  }

  /** The system fd (-1 once closed). */
  get fd(): number {
    return this.native.fd;
  }

  /** `KVM_GET_API_VERSION`: always 12 on a usable kernel. */
  apiVersion(): number {
    return this.native.apiVersion();
  }

  /** `KVM_CHECK_EXTENSION`: 0 when unsupported, else 1 or a capability-specific number. */
  checkExtension(cap: number): number {
    return this.native.checkExtension(validateU32(cap, 'cap'));
  }

  /** `KVM_GET_VCPU_MMAP_SIZE`: bytes of each vCPU's shared `kvm_run` area. */
  vcpuMmapSize(): number {
    return this.native.vcpuMmapSize();
  }

  /**
   * Creates a VM (`KVM_CREATE_VM`, retried on the spurious `EINTR` the
   * kernel may return) and, where the kernel supports them, sets the TSS and
   * identity-map addresses so that real-mode guests also run on Intel.
   */
  createVm(options: CreateVmOptions = {}): Vm {
    const o = validateOptions(options, 'options', ['type', 'tssAddr']);
    const type = own(o, 'type') === undefined ? 0 : validateU32(o.type, 'options.type');
    const tssIn = own(o, 'tssAddr');
    // The identity-map page and the TSS's three pages follow the address.
    const tss = tssIn === undefined ? 0xfffbc000n : tssIn === null ? null : validateU64(tssIn, 'options.tssAddr', (1n << 64n) - 0x4000n);
    const vm = new Vm(new NativeVm(this.native.createVm(type)), this);
    try {
      if (tss !== null) {
        // Identity map page first, then the TSS's three pages after it.
        if (vm.checkExtension(Cap.SET_IDENTITY_MAP_ADDR) > 0) vm.setIdentityMapAddr(BigInt(tss));
        if (vm.checkExtension(Cap.SET_TSS_ADDR) > 0) vm.setTssAddr(BigInt(tss) + 0x1000n);
      }
    } catch (e) {
      vm.close();
      throw e;
    }
    return vm;
  }

  /**
   * `KVM_GET_SUPPORTED_CPUID`: the CPUID leaves this host's KVM can give a
   * guest; {@link setupMode} hands them to each vCPU so that long mode is
   * allowed on Intel and AMD alike. Asked once, then kept (frozen).
   */
  getSupportedCpuid(): readonly Readonly<CpuidEntry>[] {
    this.#cpuid ??= Object.freeze(this.native.getSupportedCpuid().map((e) => Object.freeze(e)));
    return this.#cpuid;
  }

  /** `KVM_GET_MSR_INDEX_LIST`: the MSRs a vCPU's state includes (what a snapshot saves). */
  getMsrIndexList(): number[] {
    return this.native.getMsrIndexList(false);
  }

  /** `KVM_GET_MSR_FEATURE_INDEX_LIST`: the feature MSRs {@link Kvm.getFeatureMsrs} can read. */
  getMsrFeatureIndexList(): number[] {
    return this.native.getMsrIndexList(true);
  }

  /** `KVM_GET_MSRS` on `/dev/kvm`: the values of feature MSRs (what this host's KVM can offer a guest). */
  getFeatureMsrs(indices: readonly number[]): MsrEntry[] {
    return this.native.getMsrs(validateArray(indices, 'indices', 4096).map((x, i) => validateInteger(x, `indices[${i}]`, 0, 0xffffffff)));
  }

  /** Closes the system fd; VMs already created live on. Idempotent. */
  close(): void {
    this.native.close();
  }

  /** Same as {@link Kvm.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
