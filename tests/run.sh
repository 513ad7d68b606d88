#!/usr/bin/env bash
# The test command (README.md, "Try it, then test it"; .ci/run calls it too).
#
# On a fresh Debian 12 machine with Rust: installs the Debian packages the
# tests use (with apt-get, as root or through sudo), then runs every test of
# the workspace and builds and checks the Debian package. Several tests need
# root (network namespaces, FUSE, dpkg -i); run it as root.
#
# Set ORBITLAB_TEST_NO_INSTALL=1 to skip the package installation (the
# packages are already there).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests use, and why:
# - nftables, frr, dnsmasq-base: rendered gateway and DNS configurations are
#   checked by the real tools (nft -c, vtysh --dryrun, dnsmasq --test), and
#   replayed in network namespaces (real zebra/staticd);
# - iproute2, socat: network-namespace tests of the gateway ruleset;
# - fuse3: the pmxcfs simulator (a FUSE filesystem);
# - openssl, openssh-client: certificates and SSH keys are checked by openssl
#   and ssh-keygen;
# - e2fsprogs: chattr, to make a store directory refuse writes in a test;
# - build-essential, debhelper, help2man, lintian, man-db, systemd: building
#   the .deb and checking it (debian/check-package.sh: lintian, dpkg -i/-r,
#   systemd-analyze verify).
# - mmdebstrap, zstd: building the appliance templates twice and checking
#   them (appliances/check.sh);
# - lxc, bind9-dnsutils: the appliance data-path test boots containers from
#   those templates with LXC's own tools (what Proxmox's pct wraps) and
#   queries their DNS with dig (tests/tests/appliance_datapath.rs).
# - chromium, chromium-driver, fonts-font-awesome, libjs-marked, npm: the
#   panel's browser test (sim/sandbox/tests/panel.rs) runs the real Proxmox
#   web UI in headless Chromium, with Font Awesome and marked.js as Debian
#   packages them for pveproxy, and ExtJS from the npm package extjs-gpl
#   (ui/test-deps, installed below with `npm ci`; npm only when the
#   machine has none).
PACKAGES=(
  ca-certificates nftables frr dnsmasq-base iproute2 socat fuse3
  openssl openssh-client e2fsprogs
  build-essential debhelper help2man lintian man-db systemd
  mmdebstrap zstd
  lxc bind9-dnsutils
  chromium chromium-driver fonts-font-awesome libjs-marked
)
command -v npm >/dev/null || PACKAGES+=(npm)

if [ "${ORBITLAB_TEST_NO_INSTALL:-0}" != 1 ]; then
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "tests/run.sh: run as root (apt-get install)" >&2; exit 1; }
    sudo=(sudo)
  fi
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "tests/run.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The tests use LXC's tools only: keep Debian's lxcbr0 bridge (and its
    # dnsmasq) that the lxc package's lxc-net service would start off.
    if [[ " ${missing[*]} " == *" lxc "* ]] && command -v systemctl >/dev/null; then
      "${sudo[@]}" systemctl disable --now lxc-net.service >/dev/null 2>&1 || true
    fi
  fi
fi

# ExtJS (and terser, for the panel's size benchmark), pinned by
# ui/test-deps/package-lock.json; kept between runs.
if [ ! -f ui/test-deps/node_modules/extjs-gpl/build/ext-all.js ] ||
  [ ui/test-deps/package-lock.json -nt ui/test-deps/node_modules/.package-lock.json ]; then
  npm ci --prefix ui/test-deps --no-audit --no-fund --loglevel=error
fi

# The templates first: the data-path test boots containers from them.
bash appliances/check.sh target/appliances
cargo test --workspace --locked
bash debian/check-package.sh
