#!/usr/bin/env node
// Command-line entry for the node-kvm sandbox; see sandbox/README.md.
import { parseDuration, parseParamString, runInSandbox } from './sandbox.mjs';

/**
 * @import { SandboxOptions } from './sandbox.mjs'
 * @typedef {SandboxOptions & { env: Record<string, string> }} CliOptions
 * @typedef {{ help: true } | { help?: undefined, opts: CliOptions, info: boolean }} ParsedArgs
 */

const USAGE = `Usage: node sandbox/cli.mjs [options] [--] <command> [args...]

Runs <command> inside a QEMU (TCG) VM whose kernel has kvm + kvm_amd loaded,
so /dev/kvm is a real, nested AMD SVM KVM. The host root is visible read-only,
the current directory read-write at the same path. Exits with the command's
exit status, or 125 if the sandbox itself failed.

Options:
  --memory MB          guest RAM (default 2048; env NODE_KVM_SANDBOX_MEMORY)
  --cpus N             guest vCPUs (default 1; env NODE_KVM_SANDBOX_CPUS)
  --kernel PATH        vmlinuz to boot (default: newest /boot/vmlinuz-* with
                       kvm-amd modules; env NODE_KVM_SANDBOX_KERNEL)
  --param MOD.P=V      module parameter for insmod, repeatable, e.g.
                       --param kvm.tdp_mmu=0 --param kvm_amd.npt=0
                       (env NODE_KVM_SANDBOX_PARAMS="kvm.tdp_mmu=0 kvm_amd.npt=0")
  --timeout SEC        limit for the whole run (default 1800)
  --boot-timeout SEC   limit for booting up to the command (default 120)
  --cwd DIR            directory shared writable and used as cwd (default .)
  --env NAME=VALUE     extra environment variable for the command, repeatable
  --info               print the sandbox's KVM info as JSON on stdout after
                       the command (the command defaults to \`true\`)
  --verbose            show the guest init's and QEMU's messages on stderr
                       (env NODE_KVM_SANDBOX_VERBOSE=1)
  -h, --help           show this help

Examples:
  node sandbox/cli.mjs --info
  node sandbox/cli.mjs -- node -e "console.log(require('fs').existsSync('/dev/kvm'))"
  node sandbox/cli.mjs --param kvm.tdp_mmu=0 -- npm test
`;

/**
 * @param {string[]} argv the arguments after the script's path
 * @returns {ParsedArgs}
 */
function parseArgs(argv) {
  /** @type {CliOptions} */
  const opts = { env: {}, command: [] };
  let info = false;
  /** @type {string[]} */
  const params = [];
  let i = 0;
  /**
   * The option's value: after its `=`, else the next argument.
   * @param {string} name
   * @param {string | undefined} inline
   * @returns {string}
   */
  const value = (name, inline) => {
    if (inline !== undefined) return inline;
    if (i + 1 >= argv.length) throw new Error(`${name} needs a value`);
    return /** @type {string} */ (argv[++i]);
  };
  for (; i < argv.length; i++) {
    const arg = /** @type {string} */ (argv[i]);
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    switch (name) {
      case '-h':
      case '--help':
        return { help: true };
      case '--memory':
        opts.memoryMb = positiveInt(value(name, inline), name);
        break;
      case '--cpus':
        opts.cpus = positiveInt(value(name, inline), name);
        break;
      case '--kernel':
        opts.kernel = value(name, inline);
        break;
      case '--param':
        params.push(value(name, inline));
        break;
      case '--timeout':
        opts.timeoutMs = parseDuration(value(name, inline), name, 's');
        break;
      case '--boot-timeout':
        opts.bootTimeoutMs = parseDuration(value(name, inline), name, 's');
        break;
      case '--cwd':
        opts.cwd = value(name, inline);
        break;
      case '--env': {
        const kv = value(name, inline);
        const j = kv.indexOf('=');
        if (j <= 0) throw new Error(`--env expects NAME=VALUE, got ${JSON.stringify(kv)}`);
        opts.env[kv.slice(0, j)] = kv.slice(j + 1);
        break;
      }
      case '--info':
        info = true;
        break;
      case '--verbose':
        opts.verbose = true;
        break;
      default:
        throw new Error(`unknown option ${arg}`);
    }
  }
  opts.command = argv.slice(i);
  if (params.length) opts.moduleParams = parseParamString(params.join(' '), '--param');
  if (opts.command.length === 0) {
    if (!info) throw new Error('no command given');
    opts.command = ['true'];
  }
  return { opts, info };
}

/**
 * @param {string} s
 * @param {string} name the option, for the error message
 */
function positiveInt(s, name) {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} expects a positive integer, got ${JSON.stringify(s)}`);
  return n;
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`node-kvm-sandbox: ${String(/** @type {Error} */ (e).message).replace(/^sandbox: /, '')}\n\n${USAGE}`);
    return 125;
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { opts, info } = parsed;

  const abort = new AbortController();
  // (Cast, not declared: TypeScript would take it for null below, not
  // seeing the listeners assign it.)
  let signalled = /** @type {'SIGINT' | 'SIGTERM' | 'SIGHUP' | null} */ (null);
  for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) {
    process.on(sig, () => {
      signalled ??= sig;
      abort.abort();
    });
  }
  opts.signal = abort.signal;

  try {
    const { exitCode, info: kvmInfo } = await runInSandbox(opts);
    if (info) process.stdout.write(JSON.stringify(kvmInfo, null, 2) + '\n');
    return exitCode;
  } catch (e) {
    if (signalled) return 128 + { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[signalled];
    process.stderr.write(`node-kvm-sandbox: ${String(/** @type {Error} */ (e).message).replace(/^sandbox: /, '')}\n`);
    return 125;
  }
}

process.exitCode = await main();
