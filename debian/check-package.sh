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
# The web UI panel's <script> line goes into pve-manager's page template,
# /usr/share/pve-manager/index.html.tpl. This test runs where pve-manager is
# NOT installed (CI: a plain Debian 12): it writes a small stand-in template
# there (inline below, not a copy of the real one) and deletes
# /usr/share/pve-manager again at the end. It refuses to start if that
# directory already exists: it never touches a real pve-manager.
#
# Steps: copy the tree (tracked and untracked, not ignored files) to a
# temporary directory; dpkg-buildpackage -b there (the repository is not
# touched); check the .deb's contents; lintian (fails on any error or
# warning not overridden, with a justification, in
# debian/orbitlab.lintian-overrides); dpkg -i; both binaries' --version,
# man pages, completions; systemd-analyze verify on the installed unit; the
# unit enabled; the panel installed and its line in the template, once;
# a pve-manager upgrade (template replaced, file trigger: the line is back,
# once; again: the template is not rewritten); dpkg -i again (an upgrade:
# the line stays); dpkg -r leaves nothing but conffiles and the template as
# it was; dpkg -P leaves nothing at all; dpkg -i and dpkg -P straight away;
# dpkg -i and -P without a template (a warning, no failure); dpkg -P with the
# hook gone (postrm takes the line out); then a summary with figures.
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

# The web UI panel (debian/orbitlab.install, ui/orbitlab-ui-hook).
PVE_DIR=/usr/share/pve-manager
TEMPLATE=$PVE_DIR/index.html.tpl
PANEL_JS=$PVE_DIR/js/orbitlab.js
UI_HOOK=/usr/lib/orbitlab/orbitlab-ui-hook
MARK='<!-- orbitlab-panel -->'
ANCHOR='/pve2/js/pvemanagerlib.js'
STANDIN_TAG="stand-in for pve-manager's index.html.tpl, written by orbitlab's debian/check-package.sh"

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
if [ -e "$TEMPLATE" ] || [ -L "$TEMPLATE" ]; then
    grep -qF "$STANDIN_TAG" "$TEMPLATE" 2>/dev/null &&
        fail "$TEMPLATE is the stand-in left by an interrupted run of this test: check that no package owns it (dpkg -S $TEMPLATE), delete $PVE_DIR and run again"
    fail "$TEMPLATE exists (pve-manager is installed?): this test writes a stand-in template there and never touches a real one: run it on a machine without pve-manager"
fi
[ ! -e "$PVE_DIR" ] ||
    fail "$PVE_DIR exists (without index.html.tpl): this test creates that directory with a stand-in template and deletes it afterwards: run it where $PVE_DIR does not exist"

WORK="$(mktemp -d -t orbitlab-deb.XXXXXX)"
INSTALLED=0
STANDIN=0 # 1 once this script created $PVE_DIR
cleanup() {
    local rc=$?
    if [ "$INSTALLED" = 1 ] && [ -n "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null | grep -v '^not-installed$' || true)" ]; then
        echo "cleanup: purging $PKG" >&2
        dpkg -P "$PKG" >/dev/null 2>&1 || dpkg -P --force-remove-reinstreq "$PKG" >&2 || true
    fi
    if [ "$STANDIN" = 1 ]; then
        if [ -z "$(dpkg-query -W -f='${db:Status-Status}' "$PKG" 2>/dev/null | grep -v '^not-installed$' || true)" ]; then
            rm -rf "$PVE_DIR"
        else
            echo "cleanup: $PKG is still installed: left $PVE_DIR (with the stand-in template) in place" >&2
        fi
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
dpkg-deb -c "$DEB" >"$WORK/contents.long"
awk '{print $6}' "$WORK/contents.long" | sed 's|^\./|/|' >"$WORK/contents"
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
    /usr/share/orbitlab/appliances/helper/orbitlab-appliance \
    "$PANEL_JS" "$UI_HOOK"; do
    grep -qxF "$f" "$WORK/contents" || fail "the package does not ship $f"
done
grep -qE "^-rw-r--r-- root/root +[1-9][0-9]* .* \.$PANEL_JS\$" "$WORK/contents.long" ||
    fail "$PANEL_JS is not shipped as a non-empty root-owned 0644 file: $(grep -F "$PANEL_JS" "$WORK/contents.long")"
grep -qE "^-rwxr-xr-x root/root .* \.$UI_HOOK\$" "$WORK/contents.long" ||
    fail "$UI_HOOK is not shipped executable (0755): $(grep -F "$UI_HOOK" "$WORK/contents.long")"
dpkg-deb --ctrl-tarfile "$DEB" | tar -x -C "$WORK" ./postinst ./prerm ./postrm ./triggers
grep -q "deb-systemd-helper enable '$UNIT'" "$WORK/postinst" || fail "postinst does not enable $UNIT"
grep -q "deb-systemd-invoke stop '$UNIT'" "$WORK/prerm" || fail "prerm does not stop $UNIT on removal"
grep -qx "interest-noawait $TEMPLATE" "$WORK/triggers" || fail "the package has no file trigger on $TEMPLATE: $(cat "$WORK/triggers")"
grep -qF "$UI_HOOK add" "$WORK/postinst" || fail "postinst does not run $UI_HOOK add"
grep -qF "$UI_HOOK remove" "$WORK/prerm" || fail "prerm does not run $UI_HOOK remove"
say "contents: binaries, unit, man pages, completions, appliance recipes, web UI panel and hook, enable/stop snippets, file trigger present"

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
LINTIAN_O=$(grep -c '^orbitlab:' "$REPO/debian/orbitlab.lintian-overrides" || true)

# --- pve-manager's page template: a stand-in -----------------------------
# What the package does to the template is checked against this stand-in: a
# few lines around the one that loads pvemanagerlib.js, as in pve-manager's.
write_standin() {
    # Written beside the template, then renamed over it, as dpkg replaces a
    # file when pve-manager is upgraded. (dpkg -P deletes $PVE_DIR when it
    # was left empty, as the package owns it here.)
    mkdir -p "$PVE_DIR"
    cat >"$TEMPLATE.check-package" <<EOF
<!DOCTYPE html>
<!-- $STANDIN_TAG -->
<html>
  <head>
    <meta http-equiv="Content-Type" content="text/html; charset=utf-8" />
    <title>[% nodename %] - Proxmox Virtual Environment</title>
    <link rel="stylesheet" type="text/css" href="/pve2/css/ext6-pve.css?ver=[% version %]" />
    <script type="text/javascript" src="/pve2/ext6/ext-all.js?ver=7.0.0"></script>
    <script type="text/javascript" src="/proxmoxlib.js?ver=[% wtversion %]"></script>
    <script type="text/javascript" src="/pve2/js/pvemanagerlib.js?ver=[% version %]"></script>
    <script type="text/javascript" src="/pve2/ext6/locale/locale-[% lang %].js?ver=7.0.0"></script>

    <script type="text/javascript">
    if (typeof(PVE) === 'undefined') PVE = {};
    Ext.History.fieldid = 'x-history-field';
    Ext.onReady(function() { Ext.create('PVE.StdWorkspace');});
    </script>

  </head>
  <body>
  </body>
</html>
EOF
    chmod 0644 "$TEMPLATE.check-package"
    mv -f "$TEMPLATE.check-package" "$TEMPLATE"
}
STANDIN=1
write_standin
STANDIN_SHA=$(sha256sum "$TEMPLATE" | cut -d' ' -f1)
STANDIN_LINES=$(wc -l <"$TEMPLATE")
say "stand-in $TEMPLATE: $STANDIN_LINES lines, sha256 $STANDIN_SHA"

TEMPLATE_CHECKS=0
# The template holds the panel's line exactly once, right after the line that
# loads pvemanagerlib.js, loading the installed panel with its hash, and is
# otherwise the stand-in byte for byte, with its mode and owner.
template_has_line() {
    local when=$1 n anchor at want
    n=$(grep -cF "$MARK" "$TEMPLATE" || true)
    [ "$n" = 1 ] || fail "$when: $TEMPLATE has $n lines marked $MARK, expected 1"
    anchor=$(grep -nF "$ANCHOR" "$TEMPLATE" | cut -d: -f1)
    at=$(grep -nF "$MARK" "$TEMPLATE" | cut -d: -f1)
    [ "$at" = $((anchor + 1)) ] || fail "$when: the panel's line is line $at of $TEMPLATE, expected $((anchor + 1)), right after the one loading $ANCHOR"
    want="src=\"/pve2/js/orbitlab.js?ver=$(sha256sum "$PANEL_JS" | cut -c1-16)\""
    grep -F "$MARK" "$TEMPLATE" | grep -qF "$want" ||
        fail "$when: the panel's line does not load $want: $(grep -F "$MARK" "$TEMPLATE")"
    [ "$(grep -vF "$MARK" "$TEMPLATE" | sha256sum | cut -d' ' -f1)" = "$STANDIN_SHA" ] ||
        fail "$when: $TEMPLATE differs from the stand-in in more than the panel's line"
    [ "$(stat -c '%a %U:%G' "$TEMPLATE")" = "644 root:root" ] ||
        fail "$when: $TEMPLATE is $(stat -c '%a %U:%G' "$TEMPLATE"), the stand-in was 644 root:root"
    [ "$("$UI_HOOK" status)" = present ] || fail "$when: $UI_HOOK status says '$("$UI_HOOK" status)', expected present"
    TEMPLATE_CHECKS=$((TEMPLATE_CHECKS + 1))
}
# The template is the stand-in again, byte for byte: no line left behind.
template_as_shipped() {
    local when=$1
    [ -f "$TEMPLATE" ] || fail "$when: $TEMPLATE is gone"
    if grep -qF "$MARK" "$TEMPLATE"; then fail "$when: $TEMPLATE still has the panel's line: $(grep -F "$MARK" "$TEMPLATE")"; fi
    [ "$(sha256sum "$TEMPLATE" | cut -d' ' -f1)" = "$STANDIN_SHA" ] ||
        fail "$when: $TEMPLATE is not the stand-in byte for byte (sha256 $(sha256sum "$TEMPLATE" | cut -d' ' -f1), expected $STANDIN_SHA)"
    TEMPLATE_CHECKS=$((TEMPLATE_CHECKS + 1))
}

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

# --- the web UI panel -----------------------------------------------------
[ "$(stat -c '%a %U:%G' "$PANEL_JS")" = "644 root:root" ] || fail "$PANEL_JS is $(stat -c '%a %U:%G' "$PANEL_JS"), expected 644 root:root"
[ -s "$PANEL_JS" ] || fail "$PANEL_JS is empty"
PANEL_BYTES=$(stat -c %s "$PANEL_JS")
[ "$(stat -c '%a' "$UI_HOOK")" = 755 ] || fail "$UI_HOOK is $(stat -c '%a' "$UI_HOOK"), expected 755"
template_has_line "after dpkg -i"
say "panel $PANEL_JS ($PANEL_BYTES bytes, 0644); its line in $TEMPLATE once, after $ANCHOR: $(grep -F "$MARK" "$TEMPLATE" | sed 's/^ *//')"

# A pve-manager upgrade: dpkg puts the new template in place by rename (our
# line is gone), and, as the package ships that path, activates the file
# trigger of every package interested in it; pve-manager is not installed
# here, so dpkg-trigger activates it as dpkg would, and dpkg --triggers-only
# runs `postinst triggered` as the end of that dpkg run would.
say "pve-manager upgrade: $TEMPLATE replaced by rename, file trigger"
write_standin
template_as_shipped "after the template was replaced"
dpkg-trigger --no-await "$TEMPLATE" || fail "dpkg-trigger --no-await $TEMPLATE failed"
[ "$(dpkg-query -W -f='${db:Status-Status}' "$PKG")" = triggers-pending ] ||
    fail "dpkg-trigger $TEMPLATE did not activate $PKG's file trigger (status $(dpkg-query -W -f='${db:Status-Status}' "$PKG"))"
T0=$(date +%s%N)
dpkg --triggers-only "$PKG" || fail "dpkg --triggers-only $PKG failed"
TRIGGER_MS=$((($(date +%s%N) - T0) / 1000000))
[ "$(pkg_status)" = "install ok installed" ] || fail "after the trigger the package is '$(pkg_status)'"
template_has_line "after the file trigger"
# Again, with the line already there: the template is not even rewritten.
BEFORE="$(stat -c '%i %y' "$TEMPLATE")"
dpkg-trigger --no-await "$TEMPLATE" || fail "dpkg-trigger --no-await $TEMPLATE failed"
dpkg --triggers-only "$PKG" || fail "dpkg --triggers-only $PKG failed (second time)"
template_has_line "after the file trigger ran again"
[ "$(stat -c '%i %y' "$TEMPLATE")" = "$BEFORE" ] ||
    fail "the second trigger rewrote $TEMPLATE (inode, mtime: $BEFORE, now $(stat -c '%i %y' "$TEMPLATE")) though its line was already right"
say "the trigger put the line back once (${TRIGGER_MS} ms); run again, it left the template untouched"

# An upgrade (the same .deb again): prerm upgrade keeps the line, the new
# postinst finds it right: still once, and the template not rewritten.
say "dpkg -i again (upgrade to the same version)"
dpkg -i "$DEB" || fail "dpkg -i (again) failed"
[ "$(pkg_status)" = "install ok installed" ] || fail "after dpkg -i (again) the package is '$(pkg_status)'"
template_has_line "after dpkg -i again"
[ "$(stat -c '%i %y' "$TEMPLATE")" = "$BEFORE" ] ||
    fail "the upgrade rewrote $TEMPLATE (inode, mtime: $BEFORE, now $(stat -c '%i %y' "$TEMPLATE")): prerm upgrade should keep the line"
say "upgraded: the line still there once, the template untouched"

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
template_as_shipped "after dpkg -r"
say "removed: $(pkg_status); conffiles kept: ${CONFFILES:-none}; enablement kept until purge: ${KEPT:-none}; $TEMPLATE as shipped"

# --- purge: nothing at all ------------------------------------------------
# dpkg "$@", its standard error shown and also kept in $WORK/dpkg.err.
dpkg_logged() {
    local rc=0
    dpkg "$@" 2>"$WORK/dpkg.err" || rc=$?
    cat "$WORK/dpkg.err" >&2
    return "$rc"
}
# dpkg -P, then: the package, its files, enablement and conffiles are gone.
purge_and_check() {
    local when=$1 f
    dpkg_logged -P "$PKG" || fail "$when: dpkg -P failed"
    case "$(pkg_status)" in
    "" | "unknown ok not-installed") ;;
    *) fail "$when: after dpkg -P the package is '$(pkg_status)'" ;;
    esac
    INSTALLED=0
    for f in "$WANTS" "/etc/systemd/system/$UNIT" \
        "/var/lib/systemd/deb-systemd-helper-enabled/$UNIT.dsh-also" \
        "/var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/$UNIT" \
        "/var/lib/systemd/deb-systemd-helper-masked/$UNIT"; do
        if [ -e "$f" ] || [ -L "$f" ]; then fail "$when: dpkg -P left $f"; fi
    done
    for f in $CONFFILES; do [ ! -e "$f" ] || fail "$when: dpkg -P left the conffile $f"; done
    while read -r f; do
        [ -d "$f" ] && continue
        if [ -e "$f" ] || [ -L "$f" ]; then fail "$when: dpkg -P left $f"; fi
    done <"$WORK/contents"
}
# dpkg -i, then: the package is installed.
install_or_fail() {
    INSTALLED=1
    dpkg_logged -i "$DEB" || fail "$1: dpkg -i failed"
    [ "$(pkg_status)" = "install ok installed" ] || fail "$1: after dpkg -i the package is '$(pkg_status)'"
}
say "dpkg -P"
purge_and_check "purge after remove"
template_as_shipped "after dpkg -P"
say "purged: nothing left; $TEMPLATE as shipped"

# Purge straight from installed: prerm remove takes the line out.
say "dpkg -i, then dpkg -P"
install_or_fail "install before purge"
template_has_line "after dpkg -i (before purge)"
purge_and_check "purge when installed"
template_as_shipped "after dpkg -i, dpkg -P"
say "purged from installed: nothing left; $TEMPLATE as shipped"

# No template (a node without pve-manager's UI): installs, with a warning.
say "dpkg -i, dpkg -P without $TEMPLATE"
rm -f "$TEMPLATE"
install_or_fail "install without a template"
grep -qF "orbitlab-ui-hook: $TEMPLATE is absent" "$WORK/dpkg.err" ||
    fail "installing without $TEMPLATE did not warn that it is absent"
[ ! -e "$TEMPLATE" ] || fail "installing without $TEMPLATE created it"
purge_and_check "purge without a template"
[ ! -e "$TEMPLATE" ] || fail "purging without $TEMPLATE created it"
write_standin
say "without a template: installed with a warning, purged, nothing created"

# The hook gone by removal time (deleted by hand): postrm takes the line out.
say "dpkg -i, $UI_HOOK deleted, dpkg -P"
install_or_fail "install before deleting the hook"
template_has_line "after dpkg -i (before deleting the hook)"
rm -f "$UI_HOOK"
purge_and_check "purge without the hook"
grep -qF "orbitlab: taking the OrbitLab panel's line out of $TEMPLATE" "$WORK/dpkg.err" ||
    fail "purging without the hook: postrm did not say it took the line out"
template_as_shipped "after dpkg -P without the hook"
say "without the hook: postrm took the line out; $TEMPLATE as shipped"

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
  web UI panel       orbitlab.js $PANEL_BYTES bytes; stand-in template $STANDIN_LINES lines; $TEMPLATE_CHECKS template checks
                     (line once: dpkg -i, trigger, trigger again untouched, upgrade untouched;
                     as shipped: dpkg -r, -P, -P from installed, -P without the hook; no template: warning)
  file trigger       ${TRIGGER_MS} ms (dpkg --triggers-only $PKG)
  systemd            $SYSTEMD
  total time         ${TOTAL_S} s
EOF
