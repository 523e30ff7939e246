import { getSystemErrorName } from 'node:util';
import { binding } from './binding';

/**
 * A failed system call, shaped like Node's own system errors: `code` is the
 * errno name (`'EINVAL'`, `'EEXIST'`...), `errno` the positive number,
 * `syscall` the ioctl or call that failed (`'KVM_SET_USER_MEMORY_REGION'`).
 * The message says what usually causes it and what to do.
 */
export class KvmError extends Error {
  /** Errno name, as in `fs` errors: `'EINVAL'`, `'EEXIST'`, `'EBADF'`... */
  readonly code: string;
  /** The positive errno number. */
  readonly errno: number;
  /** The syscall or ioctl that failed. */
  readonly syscall: string;
  /** Extra context from the caller (a path, a slot id). */
  readonly detail: string;

  constructor(errno: number, syscall: string, detail = '') {
    const code = errnoName(errno);
    const hint = hintFor(code, syscall, detail);
    super(`${syscall} failed with ${code}${detail ? ` (${detail})` : ''}${hint ? `: ${hint}` : ''}`);
    this.name = 'KvmError';
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.detail = detail;
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `E${errno}`;
  }
}

// What a user should do about the errors they will actually meet.
function hintFor(code: string, syscall: string, detail: string): string {
  if (detail.includes('closed')) return 'create a new one; closed objects cannot be reused';
  switch (`${syscall}:${code}`) {
    case 'open:ENOENT':
      return 'there is no /dev/kvm: load kvm_intel or kvm_amd (modprobe), enable VT-x/AMD-V, or run inside the node-kvm sandbox (see sandbox/README.md)';
    case 'open:EACCES':
    case 'open:EPERM':
      return 'no permission on /dev/kvm: add your user to the kvm group (sudo usermod -aG kvm $USER, then log in again) or run as root';
    case 'open:ENXIO':
    case 'open:ENODEV':
      return '/dev/kvm exists but no KVM backend is bound to it (is this a nested guest without VT-x/AMD-V?)';
    case 'KVM_SET_USER_MEMORY_REGION:EEXIST':
      return 'the guest-physical range overlaps another slot; delete or move that slot first';
    case 'KVM_SET_USER_MEMORY_REGION:EINVAL':
      return 'guest-physical address, size and host address must be page-aligned, the slot id within KVM_CAP_NR_MEMSLOTS, and an existing slot can only be moved or change flags, not change its memory or size';
    case 'KVM_SET_USER_MEMORY_REGION:EFAULT':
      return 'the host memory is not usable for this slot';
    case 'KVM_CREATE_VCPU:EEXIST':
      return 'a vCPU with this id already exists in the VM';
    case 'KVM_CREATE_VCPU:EINVAL':
      return 'the vCPU id is out of range (see KVM_CAP_MAX_VCPUS)';
    case 'KVM_CREATE_VM:EINVAL':
      return 'this kernel does not support that VM type; use 0';
    case 'KVM_CREATE_VM:ENOMEM':
    case 'KVM_CREATE_VM:EMFILE':
      return 'out of memory or file descriptors; close VMs that are no longer used';
    case 'KVM_RUN:EFAULT':
      return 'guest memory could not be accessed';
    case 'munmap:EBUSY':
      return 'KVM still maps this memory';
    case 'KVM_GET_DIRTY_LOG:ENXIO':
    case 'KVM_CLEAR_DIRTY_LOG:ENXIO':
      return 'the VM uses the dirty ring (vm.enableDirtyRing()), which replaces the bitmap: read dirty pages with vcpu.harvestDirtyRing()';
    case 'KVM_IRQFD:EAGAIN':
    case 'KVM_IRQFD:EINVAL':
      return 'irqfds need the in-kernel irqchip: call vm.createIrqchip() (before creating vCPUs)';
  }
  if (code === 'EBUSY') return 'wait for the run in flight to finish';
  return '';
}

binding.setErrorFactory((errno, syscall, detail) => new KvmError(errno, syscall, detail));

/**
 * A `RangeError` with code `ERR_INVALID_ARG_VALUE` and a free-form message,
 * for a call that cannot be made in the object's present state (a slot
 * without dirty logging). Arguments are checked with lib/validate.ts.
 */
export function argError(message: string): RangeError & { code: string } {
  const e = new RangeError(message) as RangeError & { code: string };
  e.code = 'ERR_INVALID_ARG_VALUE';
  return e;
}
