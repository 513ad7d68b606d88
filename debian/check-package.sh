#!/usr/bin/env bash
# Builds the orbitlab .deb and checks it the way an operator would meet it.
#
# WARNING: this INSTALLS, REMOVES AND PURGES the package `orbitlab` on this
# machine (as root). It refuses to start if orbitlab is already installed or
# if any file the package ships already exists, and a trap purges what it
# installed even when a check fails, so the machine is left as it was. On a
# machine where systemd runs, installing also starts orbitlab-agent.service
# and removing stops it.
#
# Needs (Debian packages): build-essential debhelper help2man lintian
# systemd man-db, and cargo (rustup) on PATH.
#
# Steps: copy the tree (tracked and untracked, not ignored files) to a
# temporary directory; dpkg-buildpackage -b there (the repository is not
# touched); check the .deb's contents; lintian (fails on any error or
# warning not overridden, with a justification, in
# debian/orbitlab.lintian-overrides); dpkg -i; both binaries' --version,
# man pages, completions; systemd-analyze verify on the installed unit; the
# unit enabled; dpkg -r leaves nothing but conffiles; dpkg -P leaves nothing
# at all; then a summary with figures.
#
# Environment:
#   ORBITLAB_DEB_TARGET_DIR  cargo's build directory for the package build,
#                            kept between runs (default:
#                            ${CARGO_TARGET_DIR:-<repo>/target}/deb-package)
#   ORBITLAB_DEB_KEEP=1      keep the temporary directory (tree, build log,
#                            .deb, lintian output) instead of deleting it
set -euo pipefail

PKG=orbitlab
UNIT=orbitlab-agent.service
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '==> %s\n' "$*"; }
fail() {
    printf 'FAILED: %s\n' "$*" >&2
    exit 1
}
pkg_status() { dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null || true; }

# --- preconditions --------------------------------------------------------
[ "$(id -u)" = 0 ] || fail "run as root: this test installs and removes the package"
for tool in dpkg-buildpackage dh help2man lintian systemd-analyze systemctl man cargo; do
    command -v "$tool" >/dev/null ||
        fail "$tool is missing: apt-get install build-essential debhelper help2man lintian systemd man-db (cargo: rustup)"
done
case "$(pkg_status)" in
"" | "unknown ok not-installed") ;;
*) fail "$PKG is on this machine ($(pkg_status)); this test installs and purges it: remove it first (dpkg -P $PKG)" ;;
esac

WORK="$(mktemp -d -t orbitlab-deb.XXXXXX)"
INSTALLED=0
cleanup() {
    local rc=$?
    if [ "$INSTALLED" = 1 ] && [ -n "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null | grep -v '^not-installed$' || true)" ]; then
        echo "cleanup: purging $PKG" >&2
        dpkg -P "$PKG" >/dev/null 2>&1 || dpkg -P --force-remove-reinstreq "$PKG" >&2 || true
    fi
    if [ "${ORBITLAB_DEB_KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
    if [ "$rc" = 0 ]; then echo "check-package: all checks passed"; else echo "check-package: FAILED (exit $rc)" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

START=$(date +%s)
VERSION="$(dpkg-parsechangelog -l "$REPO/debian/changelog" -SVersion)"
ARCH="$(dpkg --print-architecture)"
UPSTREAM="${VERSION#*:}"   # no epoch
UPSTREAM="${UPSTREAM%-*}"  # no Debian revision (none while the package is native)
WS_VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$REPO/Cargo.toml")"
[ "$WS_VERSION" = "$UPSTREAM" ] ||
    fail "Cargo.toml's workspace version is '$WS_VERSION' but debian/changelog's is '$VERSION': add a changelog entry (dch -v $WS_VERSION)"

# --- build in a copy of the tree ------------------------------------------
SRC="$WORK/$PKG-$UPSTREAM"
mkdir -p "$SRC"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked and untracked files that are not ignored, as they are now.
    git -C "$REPO" ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$REPO/$f" ] && printf '%s\0' "$f"; done |
        tar -C "$REPO" --null -T - -cf - | tar -C "$SRC" -xf -
else
    tar -C "$REPO" --exclude=./.git --exclude=./target --exclude=./.sandbox -cf - . | tar -C "$SRC" -xf -
fi

export ORBITLAB_DEB_TARGET_DIR="${ORBITLAB_DEB_TARGET_DIR:-${CARGO_TARGET_DIR:-$REPO/target}/deb-package}"
say "building $PKG $VERSION in $SRC (cargo target: $ORBITLAB_DEB_TARGET_DIR)"
B0=$(date +%s)
if ! (cd "$SRC" && dpkg-buildpackage -b -us -uc) >"$WORK/build.log" 2>&1; then
    tail -n 80 "$WORK/build.log" >&2
    fail "dpkg-buildpackage failed (last 80 lines above)"
fi
BUILD_S=$(($(date +%s) - B0))
DEB="$WORK/${PKG}_${VERSION#*:}_${ARCH}.deb"
[ -f "$DEB" ] || fail "dpkg-buildpackage did not produce $(basename "$DEB"): $(ls "$WORK")"
say "built $(basename "$DEB") in ${BUILD_S}s"

# --- contents -------------------------------------------------------------
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$WORK/contents"
UNIT_PATH="$(grep -E "^(/usr)?/lib/systemd/system/$UNIT\$" "$WORK/contents" || true)"
[ -n "$UNIT_PATH" ] || fail "the package does not ship $UNIT"
for f in /usr/bin/orbitlab /usr/bin/orbitlab-agent \
    /usr/share/man/man1/orbitlab.1.gz /usr/share/man/man8/orbitlab-agent.8.gz \
    /usr/share/bash-completion/completions/orbitlab \
    /usr/share/zsh/vendor-completions/_orbitlab \
    /usr/share/fish/vendor_completions.d/orbitlab.fish \
    /usr/share/doc/orbitlab/copyright /usr/share/doc/orbitlab/changelog.gz \
    /usr/share/doc/orbitlab/crates.txt.gz \
    /usr/share/orbitlab/appliances/build.sh /usr/share/orbitlab/appliances/VERSION \
    /usr/share/orbitlab/appliances/helper/orbitlab-appliance; do
    grep -qxF "$f" "$WORK/contents" || fail "the package does not ship $f"
done
dpkg-deb --ctrl-tarfile "$DEB" | tar -x -C "$WORK" ./postinst ./prerm ./postrm
grep -q "deb-systemd-helper enable '$UNIT'" "$WORK/postinst" || fail "postinst does not enable $UNIT"
grep -q "deb-systemd-invoke stop '$UNIT'" "$WORK/prerm" || fail "prerm does not stop $UNIT on removal"
say "contents: binaries, unit, man pages, completions, appliance recipes, enable/stop snippets present"

# Never let dpkg overwrite, then delete, files this package does not own.
while read -r f; do
    [ -d "$f" ] && continue
    if [ -e "$f" ] || [ -L "$f" ]; then fail "$f already exists on this machine; installing would overwrite it: move it away first"; fi
done <"$WORK/contents"

# --- lintian --------------------------------------------------------------
say "lintian $(basename "$DEB")"
LINTIAN_RC=0
# Not --show-overrides: with it, this lintian (bookworm) exits 2 on
# overridden tags. The overrides are counted from their file instead.
lintian --display-info --fail-on error,warning "$DEB" >"$WORK/lintian.log" 2>&1 || LINTIAN_RC=$?
cat "$WORK/lintian.log"
[ "$LINTIAN_RC" = 0 ] || fail "lintian reported errors or warnings not overridden (exit $LINTIAN_RC)"
LINTIAN_E=$(grep -c '^E:' "$WORK/lintian.log" || true)
LINTIAN_W=$(grep -c '^W:' "$WORK/lintian.log" || true)
LINTIAN_I=$(grep -c '^I:' "$WORK/lintian.log" || true)
LINTIAN_O=$(grep -c '^orbitlab:' debian/orbitlab.lintian-overrides || true)

# --- install --------------------------------------------------------------
say "dpkg -i"
INSTALLED=1
dpkg -i "$DEB" || fail "dpkg -i failed"
[ "$(pkg_status)" = "install ok installed" ] || fail "after dpkg -i the package is '$(pkg_status)'"

for bin in orbitlab orbitlab-agent; do
    [ "$(command -v "$bin")" = "/usr/bin/$bin" ] || fail "$bin on PATH is $(command -v "$bin" || echo nothing), not /usr/bin/$bin"
    got="$("/usr/bin/$bin" --version)" || fail "$bin --version failed"
    [ "$got" = "$bin $UPSTREAM" ] || fail "$bin --version says '$got', expected '$bin $UPSTREAM'"
    say "$bin --version: $got"
done

[ "$(man -w orbitlab)" = /usr/share/man/man1/orbitlab.1.gz ] || fail "man orbitlab does not find the page"
[ "$(man -w 8 orbitlab-agent)" = /usr/share/man/man8/orbitlab-agent.8.gz ] || fail "man 8 orbitlab-agent does not find the page"
MAN_WARN="$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l /usr/share/man/man1/orbitlab.1.gz /usr/share/man/man8/orbitlab-agent.8.gz 2>&1 >/dev/null || true)"
[ -z "$MAN_WARN" ] || fail "groff warns about the man pages: $MAN_WARN"
MAN_TEXT="$(MANWIDTH=80 man -P cat orbitlab 2>/dev/null)"
grep -q 'completions' <<<"$MAN_TEXT" || fail "man orbitlab does not list the subcommands"

bash -c 'source /usr/share/bash-completion/completions/orbitlab && complete -p orbitlab' >/dev/null ||
    fail "the bash completion does not register a completion for orbitlab"
head -n1 /usr/share/zsh/vendor-completions/_orbitlab | grep -qx '#compdef orbitlab' || fail "the zsh completion lacks '#compdef orbitlab'"
grep -q '^complete -c orbitlab ' /usr/share/fish/vendor_completions.d/orbitlab.fish || fail "the fish completion has no 'complete -c orbitlab'"
say "man pages and completions in place"

say "systemd-analyze verify $UNIT_PATH"
systemd-analyze verify "$UNIT_PATH" >"$WORK/verify.log" 2>&1 || { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify failed"; }
[ ! -s "$WORK/verify.log" ] || { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify printed warnings"; }

WANTS=/etc/systemd/system/multi-user.target.wants/$UNIT
{ [ -L "$WANTS" ] && [ "$(readlink "$WANTS")" = "$UNIT_PATH" ]; } || fail "$WANTS is not a link to $UNIT_PATH: the unit is not enabled"
[ "$(systemctl is-enabled "$UNIT" 2>&1)" = enabled ] || fail "systemctl is-enabled $UNIT says '$(systemctl is-enabled "$UNIT" 2>&1)'"
if [ -d /run/systemd/system ]; then
    SYSTEMD=running
else
    SYSTEMD="not running (postinst skipped the start, as it must)"
fi
say "unit enabled ($WANTS); systemd $SYSTEMD"

# --- remove: nothing but conffiles left -----------------------------------
CONFFILES="$(dpkg-query -W -f='${Conffiles}\n' "$PKG" | awk 'NF {print $1}')"
INSTALLED_KB=$(dpkg-query -W -f='${Installed-Size}' "$PKG")
say "dpkg -r"
dpkg -r "$PKG" || fail "dpkg -r failed"
case "$(pkg_status)" in
"deinstall ok config-files" | "unknown ok not-installed" | "") ;;
*) fail "after dpkg -r the package is '$(pkg_status)', expected 'deinstall ok config-files'" ;;
esac
if [ -d /run/systemd/system ] && systemctl is-active --quiet "$UNIT"; then fail "$UNIT still runs after dpkg -r"; fi
left=0
while read -r f; do
    [ -d "$f" ] && continue
    grep -qxF "$f" <<<"$CONFFILES" && continue
    if [ -e "$f" ] || [ -L "$f" ]; then
        echo "left behind by dpkg -r: $f" >&2
        left=$((left + 1))
    fi
done <"$WORK/contents"
[ "$left" = 0 ] || fail "dpkg -r left $left file(s) that are not conffiles"
while read -r f; do
    case "$f" in /.) continue ;; /*) ;; *) continue ;; esac
    [ -d "$f" ] && continue
    grep -qxF "$f" <<<"$CONFFILES" || fail "dpkg -L still lists $f after dpkg -r, and it is not a conffile"
done < <(dpkg -L "$PKG" 2>/dev/null || true)
# Debian keeps a unit's enablement (like a conffile) until purge, so that a
# reinstall keeps the administrator's choice: the link may stay, dangling.
KEPT="$(find /etc/systemd/system -name "$UNIT" 2>/dev/null | tr '\n' ' ')"
for f in $KEPT; do [ ! -e "$f" ] || fail "$f still resolves after dpkg -r"; done
say "removed: $(pkg_status); conffiles kept: ${CONFFILES:-none}; enablement kept until purge: ${KEPT:-none}"

# --- purge: nothing at all ------------------------------------------------
say "dpkg -P"
dpkg -P "$PKG" || fail "dpkg -P failed"
case "$(pkg_status)" in
"" | "unknown ok not-installed") ;;
*) fail "after dpkg -P the package is '$(pkg_status)'" ;;
esac
INSTALLED=0
for f in "$WANTS" "/etc/systemd/system/$UNIT" \
    "/var/lib/systemd/deb-systemd-helper-enabled/$UNIT.dsh-also" \
    "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/$UNIT" \
    "/var/lib/systemd/deb-systemd-helper-masked/$UNIT"; do
    if [ -e "$f" ] || [ -L "$f" ]; then fail "dpkg -P left $f"; fi
done
for f in $CONFFILES; do [ ! -e "$f" ] || fail "dpkg -P left the conffile $f"; done
say "purged: nothing left"

# --- figures --------------------------------------------------------------
DEB_BYTES=$(stat -c %s "$DEB")
TOTAL_S=$(($(date +%s) - START))
size_of() { dpkg-deb --fsys-tarfile "$DEB" | tar -tvf - "./usr/bin/$1" | awk '{print $3}'; }
# shellcheck disable=SC1091 # os-release is read at run time
cat <<EOF

Package check summary ($(uname -m), $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"))
  package            $(basename "$DEB")
  .deb size          $DEB_BYTES bytes ($((DEB_BYTES / 1024)) KiB)
  installed size     $INSTALLED_KB KiB
  orbitlab           $(size_of orbitlab) bytes
  orbitlab-agent     $(size_of orbitlab-agent) bytes
  files shipped      $(grep -vc '/$' "$WORK/contents")
  build time         ${BUILD_S} s (dpkg-buildpackage -b, cargo target $ORBITLAB_DEB_TARGET_DIR)
  lintian            $LINTIAN_E errors, $LINTIAN_W warnings, $LINTIAN_I info, $LINTIAN_O overridden
  systemd            $SYSTEMD
  total time         ${TOTAL_S} s
EOF
