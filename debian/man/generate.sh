#!/usr/bin/env bash
# Writes the manual pages of the built binaries with help2man:
#   debian/man/generate.sh BINDIR OUTDIR
# orbitlab.1 comes from `orbitlab -h` (one line per option, which help2man
# lays out well) plus orbitlab.h2m; the examples and closing notes of
# `orbitlab --help` are turned into EXAMPLES and the end of DESCRIPTION
# here, so the page always shows what the binary shows.
# orbitlab-agent.8 comes from `orbitlab-agent --help` plus
# orbitlab-agent.h2m.
set -euo pipefail

bindir="$1"
outdir="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Plain text to roff: backslashes, lines starting with a control character,
# and hyphens that start options (minus signs in roff).
roff() {
    sed -E -e 's/\\/\\e/g' -e "s/^([.'])/\\\\\&\1/" \
        -e 's/(^|[[:space:]])--/\1\\-\\-/g' -e 's/(^|[[:space:]])-([^-])/\1\\-\2/g'
}

help="$("$bindir/orbitlab" --help)"
# The indented lines after "Examples:" up to the first blank line...
examples="$(awk '/^Examples:$/ {on = 1; next} on && /^$/ {exit} on {sub(/^  /, ""); print}' <<<"$help")"
# ...and the paragraphs after them.
notes="$(awk '/^Examples:$/ {on = 1; next} on && /^$/ {rest = 1; next} rest' <<<"$help")"
[ -n "$examples" ] || {
    echo "generate.sh: \`orbitlab --help\` has no Examples: block any more; update debian/man/generate.sh" >&2
    exit 1
}
{
    cat "$here/orbitlab.h2m"
    printf '\n[EXAMPLES]\n.nf\n'
    roff <<<"$examples"
    printf '.fi\n'
    if [ -n "$notes" ]; then
        printf '\n[>DESCRIPTION]\n.PP\n'
        roff <<<"$notes"
    fi
} >"$work/orbitlab.h2m"

mkdir -p "$outdir"
help2man --no-info --no-discard-stderr --help-option=-h --section 1 \
    --name "manage OrbitLab Sectors and manifests on a Proxmox VE cluster" \
    --include "$work/orbitlab.h2m" --output "$outdir/orbitlab.1" "$bindir/orbitlab"
help2man --no-info --no-discard-stderr --section 8 \
    --name "OrbitLab node agent" \
    --include "$here/orbitlab-agent.h2m" --output "$outdir/orbitlab-agent.8" "$bindir/orbitlab-agent"
