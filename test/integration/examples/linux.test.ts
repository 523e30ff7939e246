// kvm-test: needs=boots_linux
// examples/linux: boots the machine's own kernel (a stock bzImage) to the
// busybox /init we build, and checks what the guest itself reports.
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LinuxMachine, bootLinux, type BootResult } from '../../../examples/linux/boot';
import { INIT_LINE, INIT_PREFIX } from '../../../examples/linux/initramfs';

// Under the TCG sandbox a boot takes tens of seconds (each exit costs far more than on hardware).
const BOOT_TIMEOUT_MS = 480_000;

// On failure, say how it ended and show the end of the console.
function why(r: BootResult): string {
  return `${r.outcome}: ${r.detail}\n--- last console output ---\n${r.console.slice(-4000)}`;
}

describe('examples/linux: booting a stock kernel', () => {
  it('reaches /init, which sees our memory size and command line, runs its command and powers off', async () => {
    const memoryMb = 192;
    const append = 'console=ttyS0 nokaslr panic=-1 node_kvm.test=1';
    const r = await bootLinux({ memoryMb, append, command: 'echo "answer=$((6 * 7))"', timeoutMs: BOOT_TIMEOUT_MS });

    expect(r.outcome, why(r)).toBe('poweroff');
    expect(r.detail).toMatch(/ACPI S5/);
    expect(r.console).toMatch(/Linux version \d+\.\d+/);
    expect(r.console).toContain(INIT_LINE);
    expect(r.console).toContain('answer=42');
    expect(r.console).toContain(`${INIT_PREFIX} command exited with status 0`);
    // The kernel prints this just before it writes SLP_EN: the power-off was the kernel's own.
    expect(r.console).toContain('reboot: Power down');

    // The command line, exactly as given.
    expect(r.console).toMatch(new RegExp(`${INIT_PREFIX} cmdline: ${append.replace(/[.]/g, '\\.')}\r?\n`));
    // /proc/iomem's RAM is our e820 map: low memory, then 1 MiB up to the end of RAM.
    const ram = [...r.console.matchAll(/iomem: ([0-9a-f]+)-([0-9a-f]+) : System RAM/g)].map((m) => [parseInt(m[1]!, 16), parseInt(m[2]!, 16)]);
    expect(ram.at(-1)).toEqual([0x100000, memoryMb * 1024 * 1024 - 1]);
    expect(ram[0]?.[1]).toBe(0x9fbff);
    // MemTotal is what is left after the kernel's own reservations: most of it.
    const kb = Number(/MemTotal: (\d+) kB/.exec(r.console)?.[1]);
    expect(kb).toBeGreaterThan(memoryMb * 1024 * 0.6);
    expect(kb).toBeLessThan(memoryMb * 1024);

    // The benchmark row's two times, in order.
    expect(r.times.linuxVersionMs).not.toBeNull();
    expect(r.times.initLineMs).toBeGreaterThan(r.times.linuxVersionMs!);
    expect(r.times.endMs).toBeGreaterThan(r.times.initLineMs!);
  }, BOOT_TIMEOUT_MS + 60_000);

  it('takes typed input through the UART, and a snapshot at the shell prompt goes on in a new VM', async () => {
    const prompt = (t: string) => /starting a shell[^]*# /.test(t);
    using machine = LinuxMachine.boot({ shell: true, append: 'console=ttyS0 nokaslr panic=-1 quiet' });
    // Busybox then asks the terminal for the cursor position (ESC [ 6 n); nobody answers here.
    expect(await machine.run({ until: prompt, timeoutMs: BOOT_TIMEOUT_MS }), machine.console.slice(-4000)).toBe('paused');
    const snap = machine.snapshot();

    // The original goes on: keys typed through an input stream, as the CLI's --shell does.
    const input = new PassThrough();
    input.write('echo "original $((40 + 2))"\n');
    input.write('poweroff -f\n');
    const original = await machine.run({ input, timeoutMs: BOOT_TIMEOUT_MS });
    if (original === 'paused') throw new Error('no until was given');
    expect(original.outcome, why(original)).toBe('poweroff');
    // The shell echoes our keys, then the command prints its own line.
    expect(original.console).toContain('echo "original $((40 + 2))"');
    expect(original.console).toMatch(/\noriginal 42\r?\n/);

    // The copy starts at the prompt, with memory, vCPU, irqchip, PIT, clock and UART as they were.
    using copy = LinuxMachine.restore(snap);
    copy.type('echo "restored $((2 + 3))"\npoweroff -f\n');
    const restored = await copy.run({ timeoutMs: BOOT_TIMEOUT_MS });
    if (restored === 'paused') throw new Error('no until was given');
    expect(restored.outcome, why(restored)).toBe('poweroff');
    expect(restored.console).toMatch(/\nrestored 5\r?\n/);
    expect(restored.console).not.toContain('original 42');
    expect(restored.console).not.toContain('Linux version');
  }, 2 * BOOT_TIMEOUT_MS);

  it('brings up a second vCPU: the kernel starts it with INIT/SIPI and counts two processors', async () => {
    const r = await bootLinux({
      cpus: 2,
      append: 'console=ttyS0 nokaslr panic=-1 quiet',
      command: 'echo "processors=$(grep -c ^processor /proc/cpuinfo)"; dmesg | grep "smp: Brought up"',
      timeoutMs: BOOT_TIMEOUT_MS,
    });
    expect(r.outcome, why(r)).toBe('poweroff');
    expect(r.console).toContain('processors=2');
    expect(r.console).toMatch(/smp: Brought up 1 node, 2 CPUs/);
  }, BOOT_TIMEOUT_MS + 60_000);
});
