#!/usr/bin/env bash
# Fails when `cargo test --workspace` (or `cargo clippy --all-targets`) would
# compile a second variant of a crate that `cargo build --workspace --bins`
# (make build-functions) already compiled. That happens when a dev-dependency
# turns on a feature of a shared crate: cargo then compiles that crate again
# with the larger feature set, and again every crate above it - for a crate
# under the AWS SDK, every aws-sdk-* crate (minutes on 2 cores).
#
# Compiles nothing (well under 10 s): it compares the features `cargo tree`
# resolves without dev-dependencies (`-e normal,build`: what `cargo build
# --bins` resolves) and with them (`-e normal,build,dev`: what `cargo test`
# and `clippy --all-targets` resolve). Every (crate, feature set) of the first
# must be in the second, for the SDK and every crate under it; crates outside
# it cost seconds to compile twice and are left to the test build. The fix is
# to turn the features on for the build too:
# see the `either` entry in the root Cargo.toml.
set -euo pipefail

cd "$(dirname "$0")/.."
read -ra cargo <<<"${CARGO:-cargo}" # split like make does: CARGO="cargo +1.84"
me=${0##*/}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tree() { # $1: edge kinds, $2: output file
    if ! "${cargo[@]}" tree --workspace -e "$1" --prefix none -f $'{p}\t{f}' >"$2" 2>"$tmp/err"; then
        cat "$tmp/err" >&2
        echo "$me: \`cargo tree --workspace -e $1\` failed" >&2
        exit 2
    fi
}
tree normal,build "$tmp/build"
tree normal,build,dev "$tmp/test"

# Refuse to pass on output this script cannot read (say, a cargo format change).
for f in build test; do
    if ! grep -q $'^aws-smithy-runtime v[^\t]*\t' "$tmp/$f"; then
        echo "$me: cannot read \`cargo tree\` output (no aws-smithy-runtime line for $f)" >&2
        exit 2
    fi
done

# The SDK and everything it is built on: the crates whose second variant costs
# minutes (every aws-* crate of the build, and their dependencies).
mapfile -t roots < <(cut -f1 "$tmp/build" | sed -n 's/^\(aws-[a-z0-9-]*\) v[^ ]*$/\1/p' | sort -u)
if ! "${cargo[@]}" tree -e normal,build --prefix none -f '{p}' "${roots[@]/#/--package=}" \
    >"$tmp/sdk.raw" 2>"$tmp/err"; then
    cat "$tmp/err" >&2
    echo "$me: \`cargo tree\` of the SDK crates failed" >&2
    exit 2
fi
sed 's/ (\*)$//' "$tmp/sdk.raw" | sort -u >"$tmp/sdk"

# Lines "<name> v<version>[ (path)]|<build features>|<test feature sets>" (the
# separator is \037: an empty field must stay a field for `read`) for each crate
# from a registry that the build compiles with a feature set the test build lacks.
awk -F'\t' '
    { sub(/ \(\*\)$/, "", $2) }
    FILENAME == SDK { sdk[$0] = 1; next }
    FILENAME == TEST { if (!(($1 "\t" $2) in have)) { have[$1 "\t" $2] = 1; tf[$1] = tf[$1] " [" $2 "]" }; next }
    # Our own path crates are small: a test-only feature of theirs (the fakes
    # behind strongroom-core/test-support) costs seconds, not an SDK rebuild.
    $1 ~ / \(\// { next }
    # Only the SDK and what it is built on: a crate outside it (regex under
    # tracing-subscriber) costs seconds to compile twice.
    !($1 in sdk) { next }
    !(($1 "\t" $2) in have) && !seen[$1 "\t" $2]++ { print $1 "\037" $2 "\037" substr(tf[$1], 2) }
' SDK="$tmp/sdk" TEST="$tmp/test" "$tmp/sdk" "$tmp/test" "$tmp/build" >"$tmp/diff"

if [ ! -s "$tmp/diff" ]; then
    echo "one build: cargo test resolves the same features as cargo build --workspace --bins for the $(wc -l <"$tmp/sdk") crates of the SDK"
    exit 0
fi

{
    echo "$me: FAILED: \`cargo test --workspace\` would compile these crates a second time,"
    echo "with more features than \`cargo build --workspace --bins\` gives them (a dev-dependency"
    echo "turns them on), and again every crate that depends on them:"
    while IFS=$'\037' read -r pkg build test; do
        name=${pkg%% *}
        version=${pkg#* v}
        version=${version%% *}
        echo
        echo "  $pkg"
        echo "    cargo build --bins features: [${build}]"
        echo "    cargo test features:         ${test}"
        # Who turns on the features the build lacks: the parents of each
        # `<name> feature "<f>"` node in the inverted feature tree.
        extra=$(tr -d '[]' <<<"$test" | tr ', ' '\n\n' | grep -vxF -f <(tr ',' '\n' <<<"$build") | sort -u | tr '\n' ' ' || true)
        by=$("${cargo[@]}" tree --workspace -e normal,build,dev,features -i "$name@$version" --prefix depth 2>/dev/null |
            awk -v name="$name" -v extra=" $extra" '
                { match($0, /^[0-9]+/); d = substr($0, 1, RLENGTH) + 0; line = substr($0, RLENGTH + 1)
                  sub(/ \(\*\)$/, "", line); stack[d] = line
                  p = stack[d - 1]
                  if (d > 0 && index(p, name " feature \"") == 1 && index(line, name " ") != 1) {
                      f = p; sub(/^[^"]*"/, "", f); sub(/"$/, "", f)
                      if (index(extra, " " f " ")) print "      " f " <- " line
                  } }' | sort -u || true)
        [ -n "$by" ] && printf '    turned on by:\n%s\n' "$by"
        sdk=$("${cargo[@]}" tree --workspace -e normal,build -i "$name@$version" --prefix none -f '{p}' 2>/dev/null |
            grep -oE '^aws-[a-z0-9-]+' | sort -u | tr '\n' ' ' || true)
        echo "    SDK crates compiled twice because of it: ${sdk:-none}"
    done <"$tmp/diff"
    echo
    echo "Details: cargo tree --workspace -e features -i <crate>"
    echo "Fix: turn the same features on for the build too: declare the crate with them in"
    echo "[workspace.dependencies] of the root Cargo.toml and depend on it from a crate the"
    echo "functions use (as done for either, regex-automata and regex-syntax)."
} >&2
exit 1
