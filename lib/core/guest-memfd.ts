// guest_memfd: guest memory that belongs to KVM rather than to a process
// mapping (KVM_CREATE_GUEST_MEMFD), bound to a slot with
// KVM_SET_USER_MEMORY_REGION2. The fd is this object's to close.
import { closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { KvmError } from './errors';

/** A guest_memfd made by {@link Vm.createGuestMemfd}. */
export class GuestMemfd {
  #fd: number;
  /** Its size in bytes. */
  readonly size: number;

  /** @internal */
  constructor(fd: number, size: number) {
    this.#fd = fd;
    this.size = size;
  }

  /** The file descriptor (-1 once closed). */
  get fd(): number {
    return this.#fd;
  }

  /** @internal The fd, or EBADF when closed. */
  liveFd(syscall: string): number {
    if (this.#fd < 0) throw new KvmError(osConstants.errno.EBADF, syscall, 'the guest_memfd is closed');
    return this.#fd;
  }

  /** Closes the fd (slots bound to it keep the memory: KVM holds its own reference). Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }

  /** Same as {@link GuestMemfd.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
