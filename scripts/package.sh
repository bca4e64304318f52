#!/usr/bin/env bash
# Build the Debian package target/debian/gmhsm_<version>_amd64.deb with dpkg-deb from a staged
# tree: gmhsm-card, gmhsmd and gmhsm (release builds, debug info stripped), the systemd units,
# the service user (sysusers.d + postinst), udev rules, the default configuration in /etc/gmhsm
# (conffiles), copyright, changelog and maintainer scripts. Files: packaging/. docs/deploy.md.
#
# Usage: scripts/package.sh [--allow-missing-card]
#   --allow-missing-card  for testing only, while no gmhsm-card binary exists in the workspace:
#                         builds target/debian/gmhsm_<version>_amd64-without-card.deb (never
#                         the real name), marked INCOMPLETE in its description.
# Environment: CARGO_TARGET_DIR is honoured for the build; the package goes to target/debian.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PATH:/usr/sbin:/sbin"
ROOT_DIR=$(pwd)

allow_missing_card=0
for arg in "$@"; do
  case "$arg" in
    --allow-missing-card) allow_missing_card=1 ;;
    *) echo "package.sh: unknown argument: $arg (usage: scripts/package.sh [--allow-missing-card])" >&2; exit 2 ;;
  esac
done

for tool in dpkg-deb cargo python3 strip gzip readelf; do
  command -v "$tool" >/dev/null 2>&1 || { echo "package.sh: $tool not found" >&2; exit 1; }
done

# The version: [workspace.package] version in Cargo.toml; the changelog must agree.
version=$(python3 -c 'import tomllib,sys; print(tomllib.load(open("Cargo.toml","rb"))["workspace"]["package"]["version"])')
changelog_version=$(sed -n '1s/^gmhsm (\([^)]*\)).*/\1/p' packaging/debian/changelog)
if [ "$changelog_version" != "$version" ]; then
  echo "package.sh: packaging/debian/changelog is at $changelog_version, Cargo.toml at $version: add a changelog entry" >&2
  exit 1
fi

# Which package builds the gmhsm-card binary, and whether the daemon has a pcsc feature (the
# front panel's reader through pcscd): from cargo metadata, not guessed.
read -r card_pkg daemon_pcsc < <(cargo metadata --no-deps --format-version 1 --locked | python3 -c '
import json, sys
m = json.load(sys.stdin)
card = "-"
pcsc = "no"
for p in m["packages"]:
    if any(t["name"] == "gmhsm-card" and "bin" in t["kind"] for t in p["targets"]):
        card = p["name"]
    if p["name"] == "gmhsm-daemon" and "pcsc" in p["features"]:
        pcsc = "yes"
print(card, pcsc)')

if [ -z "${card_pkg:-}" ] || [ -z "${daemon_pcsc:-}" ]; then
  echo "package.sh: cargo metadata gave no answer" >&2
  exit 1
fi
with_card=1
if [ "$card_pkg" = "-" ]; then
  if [ "$allow_missing_card" = 0 ]; then
    echo "package.sh: no gmhsm-card binary in this workspace (no package has a bin target named gmhsm-card)." >&2
    echo "package.sh: the package needs the card runtime; it is not built without it (a test build: --allow-missing-card)." >&2
    exit 1
  fi
  with_card=0
  echo "package.sh: WARNING: building a test package WITHOUT gmhsm-card (--allow-missing-card)" >&2
fi
if [ "$with_card" = 1 ] && [ ! -f board/appliance.example.toml ]; then
  echo "package.sh: board/appliance.example.toml is missing: gmhsm-card has no default /etc/gmhsm/appliance.toml" >&2
  exit 1
fi

# Release build of exactly the packaged binaries.
build=(cargo build --release --locked -p gmhsm-daemon -p gmhsm-client)
[ "$with_card" = 1 ] && build+=(-p "$card_pkg")
[ "$daemon_pcsc" = yes ] && build+=(--features gmhsm-daemon/pcsc)
"${build[@]}" --bins
bin_dir="${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release"

out_dir="$ROOT_DIR/target/debian"
stage="$out_dir/stage"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/usr/lib/sysusers.d" \
  "$stage/lib/udev/rules.d" "$stage/etc/gmhsm" "$stage/usr/share/doc/gmhsm"

bins=(gmhsmd gmhsm)
[ "$with_card" = 1 ] && bins+=(gmhsm-card)
for b in "${bins[@]}"; do
  install -m 0755 "$bin_dir/$b" "$stage/usr/bin/$b"
  # As dh_strip does (Debian policy 10.1): no debug info, no symbols the binary does not need.
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/usr/bin/$b"
done

install -m 0644 packaging/systemd/gmhsm-card.service packaging/systemd/gmhsmd.service "$stage/lib/systemd/system/"
install -m 0644 packaging/sysusers/gmhsm.conf "$stage/usr/lib/sysusers.d/gmhsm.conf"
install -m 0644 packaging/udev/60-gmhsm.rules "$stage/lib/udev/rules.d/60-gmhsm.rules"

# Default configuration, marked as conffiles: dpkg keeps an administrator's changes.
install -m 0640 daemon/gmhsmd.example.toml "$stage/etc/gmhsm/gmhsmd.toml"
conffiles=(/etc/gmhsm/gmhsmd.toml)
if [ -f board/appliance.example.toml ]; then
  install -m 0640 board/appliance.example.toml "$stage/etc/gmhsm/appliance.toml"
  conffiles+=(/etc/gmhsm/appliance.toml)
fi
printf '%s\n' "${conffiles[@]}" >"$stage/DEBIAN/conffiles"

install -m 0644 packaging/debian/copyright "$stage/usr/share/doc/gmhsm/copyright"
gzip -9n <packaging/debian/changelog >"$stage/usr/share/doc/gmhsm/changelog.gz"
chmod 0644 "$stage/usr/share/doc/gmhsm/changelog.gz"
install -m 0644 docs/deploy.md "$stage/usr/share/doc/gmhsm/deploy.md"
install -D -m 0644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/gmhsm"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"

# Depends: the package of each shared library the binaries link (at least the build host's
# version), found through dpkg; no dpkg-dev needed.
depends=()
# The linker cache read once: `ldconfig -p | awk '... exit'` ends ldconfig with SIGPIPE, which
# pipefail turns into a failure of the whole script (now and then, by timing).
ldcache=$(ldconfig -p)
for lib in $(for b in "${bins[@]}"; do readelf -d "$stage/usr/bin/$b"; done | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u); do
  path=$(awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}' <<<"$ldcache")
  [ -n "$path" ] || { echo "package.sh: cannot find $lib, which the binaries link" >&2; exit 1; }
  # dpkg knows each file under the path its package ships it at: /lib or /usr/lib (merged /usr).
  pkg=$(dpkg -S "$path" 2>/dev/null || dpkg -S "/usr$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null) || {
    echo "package.sh: no Debian package owns $path ($lib)" >&2
    exit 1
  }
  pkg=${pkg%%:*}
  ver=$(dpkg-query -W -f='${Version}' "$pkg")
  depends+=("$pkg (>= ${ver%%-*})")
done
# tpm2-tss loads the TCTI named in appliance.toml with dlopen, which readelf cannot see: the
# default one ("device:/dev/tpmrm0") is libtss2-tcti-device0.
if printf '%s\n' "${depends[@]}" | grep -q '^libtss2-tctildr'; then
  depends+=("libtss2-tcti-device0")
fi
depends_line=$(printf '%s\n' "${depends[@]}" adduser | sort -u | paste -sd, - | sed 's/,/, /g')

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
description_note=""
deb="$out_dir/gmhsm_${version}_amd64.deb"
if [ "$with_card" = 0 ]; then
  deb="$out_dir/gmhsm_${version}_amd64-without-card.deb"
  description_note=" INCOMPLETE TEST BUILD, without gmhsm-card (package.sh --allow-missing-card).\n ."
fi
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends_line/" \
  -e "/^Description: /{p;s/.*/$description_note/;/^\$/d}" \
  packaging/debian/control.in >"$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"

rm -f "$deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
