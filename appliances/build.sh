#!/usr/bin/env bash
# Builds one OrbitLab appliance LXC template, reproducibly.
#
#   bash appliances/build.sh ROLE OUTDIR        (ROLE: gateway or dns)
#
# Writes, in OUTDIR:
#   orbitlab-ROLE_VERSION_amd64.tar.zst       the template (`pct create` takes it
#                                             from a storage's vztmpl content)
#   orbitlab-ROLE_VERSION_amd64.packages      build log: the template's sha256 and
#                                             every installed package with its version
#   orbitlab-ROLE_VERSION_amd64.tar.zst.sha256   for `sha256sum -c`
#
# The root filesystem is Debian 12 (bookworm, amd64) made by mmdebstrap from
# Debian's own packages: the Essential set, appliances/packages and
# appliances/ROLE/packages, without recommends, docs, man pages or locales.
# /usr is merged by mmdebstrap's merged-usr hook (which installs
# usr-is-merged, so that apt does not pull in usrmerge and perl). On top: appliances/ROLE/rootfs/ (factory configuration), the in-container
# helper as /usr/sbin/orbitlab-appliance, /etc/orbitlab/role and
# /etc/orbitlab/version; `orbitlab-appliance init` then moves the managed
# configuration files into the factory bundle (see appliances/README.md).
#
# Reproducible: every file carries SOURCE_DATE_EPOCH from appliances/VERSION,
# the tarball is sorted with normalized metadata (numeric owners kept: FRR and
# dnsmasq files belong to their system users) and compressed by zstd at a
# fixed level and thread count; files that differ from build to build (logs,
# caches, machine-id, the build host's hostname and resolv.conf) are removed
# or given fixed contents. Two builds from the same package versions are
# bit-identical (appliances/check.sh proves it).
#
# Needs root (mmdebstrap --mode=root, chroot), mmdebstrap, zstd and Debian's
# package mirrors (mmdebstrap's default: bookworm, bookworm-updates,
# bookworm-security). ORBITLAB_APPLIANCE_SOURCES=FILE uses that apt
# sources.list (one-line or deb822) instead, e.g. for a local mirror.
set -euo pipefail

usage() {
  echo "usage: $0 gateway|dns OUTDIR" >&2
  exit 64
}
[ "$#" -eq 2 ] || usage
role=$1
outdir=$2
case "$role" in
  gateway | dns) ;;
  *) echo "build.sh: unknown role '$role' (gateway or dns)" >&2; usage ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "build.sh: run as root (mmdebstrap --mode=root)" >&2; exit 1; }
for tool in mmdebstrap zstd tar sha256sum dpkg-query; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (apt-get install mmdebstrap zstd)" >&2; exit 1; }
done

# key=value lines of appliances/VERSION.
setting() {
  sed -n "s/^$1=\([^[:space:]]*\)[[:space:]]*\$/\1/p" "$here/VERSION"
}
version=$(setting version)
SOURCE_DATE_EPOCH=$(setting source_date_epoch)
export SOURCE_DATE_EPOCH
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "build.sh: no version=X.Y.Z in $here/VERSION" >&2; exit 1; }
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || { echo "build.sh: no source_date_epoch=N in $here/VERSION" >&2; exit 1; }

# Package names of a list file: one a line, '#' starts a comment.
package_list() {
  sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$1"
}
packages=$( { package_list "$here/packages"; package_list "$here/$role/packages"; } | sort -u | paste -sd, -)

name="orbitlab-${role}_${version}_amd64"
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
work=$(mktemp -d "$outdir/.build-$role.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
started=$(date +%s)

# Everything dpkg leaves out of the image (kept in the image too, in
# /etc/dpkg/dpkg.cfg.d/99mmdebstrap, so nothing added later brings them back).
# Copyright files stay: they are the packages' licences.
dpkgopts=(
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/doc-base/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --dpkgopt='path-exclude=/usr/share/i18n/*'
  --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/linda/*'
  --dpkgopt='path-exclude=/usr/share/groff/*'
  --dpkgopt='path-exclude=/usr/share/bug/*'
  --dpkgopt='path-exclude=/usr/share/zsh/*'
)
sources=()
if [ -n "${ORBITLAB_APPLIANCE_SOURCES:-}" ]; then
  sources=("$ORBITLAB_APPLIANCE_SOURCES")
fi

echo "build.sh: building $name ($packages)" >&2
if ! mmdebstrap --mode=root --variant=essential --architectures=amd64 \
  --aptopt='APT::Install-Recommends "false"' \
  --include="$packages" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  "${dpkgopts[@]}" \
  bookworm "$rootfs" "${sources[@]}" >"$work/mmdebstrap.log" 2>&1; then
  cat "$work/mmdebstrap.log" >&2
  echo "build.sh: mmdebstrap failed (its output is above)" >&2
  exit 1
fi
bootstrapped=$(date +%s)

# The helper, the role, the factory configuration.
install -D -m 0755 "$here/helper/orbitlab-appliance" "$rootfs/usr/sbin/orbitlab-appliance"
install -d -m 0755 "$rootfs/etc/orbitlab"
printf '%s\n' "$role" >"$rootfs/etc/orbitlab/role"
printf '%s\n' "$version" >"$rootfs/etc/orbitlab/version"
(cd "$here/$role/rootfs" && find . -type f) | while read -r f; do
  install -D -m 0644 "$here/$role/rootfs/$f" "$rootfs/$f"
done
case "$role" in
  # The ruleset survives a restart of the container: nftables.service loads
  # /etc/nftables.conf (the current bundle's) at boot. frr.service is
  # enabled by its package.
  gateway) chroot "$rootfs" systemctl enable --quiet nftables.service ;;
  dns) ;;
esac
chroot "$rootfs" /usr/sbin/orbitlab-appliance init
rm -f "$rootfs/var/lib/orbitlab/lock"

# Proxmox writes /etc/hostname, /etc/hosts, /etc/resolv.conf and
# /etc/network/interfaces when it creates or starts the container; the
# template carries neutral contents, not the build host's.
printf 'orbitlab-%s\n' "$role" >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
: >"$rootfs/etc/resolv.conf"
printf 'auto lo\niface lo inet loopback\n' >"$rootfs/etc/network/interfaces"
# Left by the build or different from build to build: apt's state (there is
# no apt in the image), caches, logs, backups of the user databases, the
# machine-id (Proxmox removes it on create; systemd makes a new one).
rm -rf "$rootfs"/etc/apt "$rootfs"/var/lib/apt "$rootfs"/var/cache/apt \
  "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
  "$rootfs"/etc/passwd- "$rootfs"/etc/group- "$rootfs"/etc/shadow- "$rootfs"/etc/gshadow- \
  "$rootfs"/var/cache/ldconfig/aux-cache
find "$rootfs/var/log" -type f -delete
# What dpkg's path-exclude leaves: symlinks beside the copyright files,
# install-info's index, empty directories.
find "$rootfs/usr/share/doc" -mindepth 2 ! -type d ! -name copyright -delete
rm -f "$rootfs"/usr/share/info/dir*
find "$rootfs/usr/share/doc" "$rootfs/usr/share/man" "$rootfs/usr/share/info" \
  "$rootfs/usr/share/locale" -mindepth 1 -depth -type d -empty -delete
: >"$rootfs/etc/machine-id"

# The build log: every installed package with its version.
dpkg-query --admindir="$rootfs/var/lib/dpkg" -W \
  -f='${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n' |
  awk -F'\t' '$1 ~ /^ii/ { print $2 "\t" $3 "\t" $4 }' | LC_ALL=C sort >"$work/packages"

# The tarball: `./`-rooted like Proxmox's templates, sorted, every mtime set
# to SOURCE_DATE_EPOCH, numeric owners, no atime/ctime, file capabilities kept.
tar --create --file="$work/$name.tar" --directory="$rootfs" \
  --sort=name --format=pax --numeric-owner \
  --mtime="@$SOURCE_DATE_EPOCH" \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  --xattrs --xattrs-include=security.capability \
  .
zstd --quiet -19 -T2 --rm "$work/$name.tar" -o "$work/$name.tar.zst"

sum=$(cd "$work" && sha256sum "$name.tar.zst")
{
  echo "# $name.tar.zst"
  echo "# sha256 ${sum%% *}"
  echo "# SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH"
  echo "# package	version	architecture"
  cat "$work/packages"
} >"$work/$name.packages"
echo "$sum" >"$work/$name.tar.zst.sha256"
mv -f "$work/$name.tar.zst" "$work/$name.packages" "$work/$name.tar.zst.sha256" "$outdir/"

size=$(stat -c %s "$outdir/$name.tar.zst")
echo "build.sh: $outdir/$name.tar.zst: $(awk -v b="$size" 'BEGIN { printf "%.1f MiB", b / 1048576 }'), sha256 ${sum%% *}, $(($(date +%s) - started)) s (mmdebstrap $((bootstrapped - started)) s)" >&2
