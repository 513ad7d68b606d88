#!/usr/bin/env bash
# Builds both appliance templates twice and checks them (CI runs this from
# tests/run.sh).
#
#   bash appliances/check.sh OUTDIR
#
# For each role (gateway, dns): builds into OUTDIR and again into
# OUTDIR/rebuild, fails unless both builds have the same sha256 (and says
# where they differ), then checks the template's contents: what Proxmox's
# `pct create` checks (a ./sbin entry, at least 10 members), the helper and
# the role file, the role's binaries, the managed files linked into the
# factory bundle, and nothing that must not be there (sshd, man pages, a
# compiler, apt); then checks the factory configuration with the template's
# own nft, vtysh and dnsmasq (chroot). Prints sizes and build times. Needs
# what build.sh needs, plus unshare.
set -euo pipefail

[ "$#" -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 64; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1/rebuild"
outdir=$(cd "$1" && pwd)
version=$(sed -n 's/^version=\([^[:space:]]*\).*/\1/p' "$here/VERSION")
failures=0
summary=()

fail() {
  echo "check.sh: FAIL: $*" >&2
  failures=$((failures + 1))
}

# Where two builds differ: metadata listings, then file contents.
explain_difference() {
  local a=$1 b=$2 tmp
  tmp=$(mktemp -d)
  diff <(cut -f2- "${a%.tar.zst}.packages") <(cut -f2- "${b%.tar.zst}.packages") >&2 &&
    echo "check.sh: same package versions in both builds" >&2 ||
    echo "check.sh: the package versions differ (did the mirror change between the builds?)" >&2
  diff <(tar --zstd -tvf "$a" --full-time) <(tar --zstd -tvf "$b" --full-time) | head -n 40 >&2 || true
  mkdir "$tmp/a" "$tmp/b"
  tar --zstd -xf "$a" -C "$tmp/a"
  tar --zstd -xf "$b" -C "$tmp/b"
  diff <(cd "$tmp/a" && find . -type f -exec sha256sum {} + | sort -k2) \
    <(cd "$tmp/b" && find . -type f -exec sha256sum {} + | sort -k2) | head -n 40 >&2 || true
  rm -rf "$tmp"
}

check_contents() {
  local role=$1 tarball=$2 list members
  list=$(tar --zstd -tvf "$tarball" --numeric-owner)
  members=$(tar --zstd -tf "$tarball")
  has() { grep -qx -- "$1" <<<"$members" || fail "$role: $1 is missing"; }
  lacks() { ! grep -q -- "$1" <<<"$members" || fail "$role: holds $(grep -- "$1" <<<"$members" | head -n 3 | tr '\n' ' ')"; }
  links() { grep -q -- " $1 -> $2\$" <<<"$list" || fail "$role: $1 is not a link to $2"; }

  # What pct create checks before it extracts a template.
  grep -qE ' \./sbin( -> |/$)' <<<"$list" || fail "$role: no ./sbin entry (pct create refuses the template)"
  [ "$(wc -l <<<"$members")" -ge 10 ] || fail "$role: fewer than 10 members"
  if grep -qv '^\./' <<<"$members"; then fail "$role: a member does not start with ./"; fi
  [ "$(tar --zstd -xOf "$tarball" ./etc/orbitlab/role)" = "$role" ] || fail "$role: ./etc/orbitlab/role does not say $role"
  [ "$(tar --zstd -xOf "$tarball" ./etc/orbitlab/version)" = "$version" ] || fail "$role: ./etc/orbitlab/version is not $version"

  has ./usr/sbin/orbitlab-appliance
  has ./usr/lib/systemd/systemd
  links ./usr/sbin/init /lib/systemd/systemd
  has ./usr/sbin/ifup
  has ./usr/bin/ip
  links ./var/lib/orbitlab/current bundles/factory
  has ./var/lib/orbitlab/bundles/factory/MANIFEST
  case "$role" in
    gateway)
      has ./usr/lib/frr/zebra
      has ./usr/lib/frr/staticd
      has ./usr/bin/vtysh
      has ./usr/sbin/nft
      links ./etc/nftables.conf ../var/lib/orbitlab/current/etc/nftables.conf
      links ./etc/frr/frr.conf ../../var/lib/orbitlab/current/etc/frr/frr.conf
      links ./etc/frr/daemons ../../var/lib/orbitlab/current/etc/frr/daemons
      # Only zebra and staticd (always started by FRR): every daemon is "no".
      if tar --zstd -xOf "$tarball" ./var/lib/orbitlab/bundles/factory/etc/frr/daemons | grep -E '^[a-z0-9]+d=yes'; then
        fail "gateway: the factory daemons file enables a routing daemon"
      fi
      grep -q ' \./etc/systemd/system/sysinit.target.wants/nftables.service -> ' <<<"$list" ||
        fail "gateway: nftables.service is not enabled"
      grep -q ' \./etc/systemd/system/multi-user.target.wants/frr.service -> ' <<<"$list" ||
        fail "gateway: frr.service is not enabled"
      lacks '/usr/sbin/dnsmasq$'
      ;;
    dns)
      has ./usr/sbin/dnsmasq
      links ./etc/dnsmasq.d/orbitlab.conf ../../var/lib/orbitlab/current/etc/dnsmasq.d/orbitlab.conf
      links ./etc/orbitlab/dns.hosts ../../var/lib/orbitlab/current/etc/orbitlab/dns.hosts
      grep -q ' \./etc/systemd/system/multi-user.target.wants/dnsmasq.service -> ' <<<"$list" ||
        fail "dns: dnsmasq.service is not enabled"
      lacks '/usr/lib/frr/'
      ;;
  esac
  lacks 'sshd'
  lacks '^\./etc/ssh/ssh_host_'
  lacks '^\./usr/share/man/.'
  lacks '^\./usr/share/info/.'
  lacks '^\./usr/bin/\(gcc\|cc\|c++\|g++\|x86_64-linux-gnu-gcc\)'
  lacks '^\./usr/bin/apt'
  lacks '^\./var/lib/apt/lists/.'
  lacks '^\./var/log/.*\.log$'
  [ "$(tar --zstd -xOf "$tarball" ./etc/machine-id | wc -c)" -eq 0 ] || fail "$role: /etc/machine-id is not empty"
  # Copyright files only under /usr/share/doc.
  if grep '^\./usr/share/doc/[^/]*/.' <<<"$members" | grep -qv '/copyright$'; then
    fail "$role: documentation besides copyright files: $(grep '^\./usr/share/doc/[^/]*/.' <<<"$members" | grep -v '/copyright$' | head -n 3 | tr '\n' ' ')"
  fi
}

passed=0
# The factory configuration passes the template's own tools, run in the
# extracted template (chroot; nft in a throwaway network namespace): the
# binaries have their libraries and the managed paths resolve.
check_factory() {
  local role=$1 tarball=$2 tmp
  tmp=$(mktemp -d)
  tar --zstd -xpf "$tarball" -C "$tmp"
  in_template() { chroot "$tmp" "$@" >/dev/null 2>&1 || fail "$role: in the template, $* fails"; }
  case "$role" in
    gateway)
      unshare -n chroot "$tmp" /usr/sbin/nft -c -f /etc/nftables.conf >/dev/null 2>&1 ||
        fail "gateway: in the template, nft -c -f /etc/nftables.conf fails"
      in_template /usr/bin/vtysh --dryrun -f /etc/frr/frr.conf
      in_template /bin/sh -n /etc/frr/daemons
      ;;
    dns)
      in_template /usr/sbin/dnsmasq --test --conf-file=/etc/dnsmasq.conf --conf-dir=/etc/dnsmasq.d
      ;;
  esac
  in_template /bin/sh -n /usr/sbin/orbitlab-appliance
  rm -rf "$tmp"
}

for role in gateway dns; do
  before=$failures
  name="orbitlab-${role}_${version}_amd64.tar.zst"
  times=()
  for dir in "$outdir" "$outdir/rebuild"; do
    start=$(date +%s)
    bash "$here/build.sh" "$role" "$dir" || { fail "$role: build into $dir failed"; continue 2; }
    times+=("$(($(date +%s) - start))")
  done
  first=$(cut -d' ' -f1 "$outdir/$name.sha256")
  second=$(cut -d' ' -f1 "$outdir/rebuild/$name.sha256")
  if [ "$first" = "$second" ]; then
    echo "check.sh: $role: reproducible, both builds sha256 $first" >&2
  else
    fail "$role: NOT REPRODUCIBLE: $first (first build) != $second (second build)"
    explain_difference "$outdir/$name" "$outdir/rebuild/$name"
  fi
  check_contents "$role" "$outdir/$name"
  check_factory "$role" "$outdir/$name"
  size=$(stat -c %s "$outdir/$name")
  mib=$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }')
  unpacked=$(zstd -dc "$outdir/$name" | wc -c | awk '{ printf "%.0f", $1 / 1048576 }')
  packages=$(grep -vc '^#' "${outdir}/${name%.tar.zst}.packages")
  [ "$failures" -eq "$before" ] && passed=$((passed + 1))
  summary+=("$role: $mib MiB compressed ($unpacked MiB unpacked, $packages packages), builds ${times[0]} s and ${times[1]} s, sha256 $first")
done

printf 'check.sh: %s\n' "${summary[@]}" >&2
# One line per template, in the plain form CI reads.
echo "appliances: $passed passed, $((2 - passed)) failed"
[ "$failures" -eq 0 ]
