#!/usr/bin/env bash
# Build the release for the old servers: x86_64 Linux binaries that run on glibc 2.17 (CentOS 7)
# and later, packed with the example configuration, crontab, logrotate rules, systemd units,
# README, CHANGELOG, man pages (man/man1/) and shell completions (completions/{bash,zsh,fish}/).
#
#   scripts/release.sh
#
# Steps: installs cargo-zigbuild (`cargo install --locked`) when missing and the `ziglang` Python
# package (pinned, in a venv under target/release-tools); builds a1-to-a2, box-poll, reprocess,
# cleanup and box-setup with `cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.17`
# (symbols stripped); checks that the highest GLIBC symbol version each binary needs is <= 2.17
# and that OpenSSL is nowhere in the dependency tree; writes
#   target/release-dist/content-scaling-<version>-x86_64-linux-gnu2.17.tar.gz
# and prints its path as the last line on stdout (progress and figures go to stderr).
#
# Exit codes: 0 done, 1 failed (build, GLIBC check, OpenSSL found), 3 the Python package index
# is unreachable (zig cannot be installed; the release test skips on this one).
# Knobs: CS_ZIG_VERSION (default 0.15.2), PIP_INDEX_URL (pip's own), CS_RELEASE_TOOLS (default
# target/release-tools).
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

root=$(pwd)
started=$SECONDS
glibc=2.17
triple=x86_64-unknown-linux-gnu
zig_version="${CS_ZIG_VERSION:-0.15.2}"
tools="${CS_RELEASE_TOOLS:-$root/target/release-tools}"
binaries=(a1-to-a2 box-poll reprocess cleanup box-setup)

command -v cargo >/dev/null 2>&1 || cs_die "cargo not found: install Rust (https://rustup.rs) and rerun"
command -v python3 >/dev/null 2>&1 || cs_die "python3 is needed for the ziglang package (Debian/Ubuntu: apt-get install python3-venv; RHEL/Fedora: dnf install python3, CentOS 7: yum install python3)"
command -v objdump >/dev/null 2>&1 || cs_die "objdump is needed for the GLIBC check (Debian/Ubuntu: apt-get install binutils; RHEL/Fedora: dnf install binutils, CentOS 7: yum install binutils)"

# --- tools: cargo-zigbuild and zig (ziglang from PyPI) ---
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
  cs_log "installing cargo-zigbuild (cargo install cargo-zigbuild --locked)"
  cargo install cargo-zigbuild --locked >&2
fi
venv="$tools/venv"
if ! "$venv/bin/python3" -c 'import ziglang' >/dev/null 2>&1 \
  || [ "$("$venv/bin/python3" -m pip show ziglang 2>/dev/null | sed -n 's/^Version: //p')" != "$zig_version" ]; then
  cs_log "installing ziglang==$zig_version into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || cs_die "python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv; RHEL/Fedora: dnf install python3, CentOS 7: yum install python3)"
  if ! "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check "ziglang==$zig_version" >&2; then
    if ! "$venv/bin/python3" -m pip download --quiet --no-deps -d "$tools/probe" pip >/dev/null 2>&1; then
      echo "release.sh: the Python package index is unreachable: cannot install ziglang" >&2
      exit 3
    fi
    cs_die "pip install ziglang==$zig_version failed"
  fi
fi
# cargo-zigbuild runs `python3 -m ziglang` when no `zig` is on PATH: the venv's python3 first.
export PATH="$venv/bin:$PATH"
cs_log "zig $(python3 -m ziglang version), $(cargo-zigbuild --version 2>/dev/null | head -n1)"
rustup target list --installed 2>/dev/null | grep -qx "$triple" || rustup target add "$triple" >&2

# --- no OpenSSL anywhere ---
if cargo tree -i openssl-sys --workspace >/dev/null 2>&1; then
  cargo tree -i openssl-sys --workspace >&2 || true
  cs_die "openssl-sys is in the dependency tree (see above): the binaries must use rustls only"
fi
cs_log "no OpenSSL in the dependency tree (cargo tree -i openssl-sys finds nothing)"

# --- build ---
packages=()
for binary in "${binaries[@]}"; do packages+=(-p "$binary"); done
cs_log "cargo zigbuild --release --target $triple.$glibc ${packages[*]}"
build_started=$SECONDS
CARGO_PROFILE_RELEASE_STRIP=symbols cargo zigbuild --release --target "$triple.$glibc" "${packages[@]}" >&2
build_secs=$((SECONDS - build_started))
out="$root/target/$triple/release"

# --- GLIBC check ---
failed=0
for binary in "${binaries[@]}"; do
  file="$out/$binary"
  [ -x "$file" ] || cs_die "$file was not built"
  highest=$(objdump -T "$file" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  size=$(stat -c %s "$file")
  if [ "$(printf '%s\n%s\n' "${highest#GLIBC_}" "$glibc" | sort -V | tail -1)" != "$glibc" ]; then
    printf 'FAIL %s: highest %s > GLIBC_%s\n' "$binary" "$highest" "$glibc" >&2
    failed=1
  else
    awk -v b="$binary" -v h="$highest" -v g="$glibc" -v s="$size" \
      'BEGIN { printf "%s: highest %s (<= GLIBC_%s), %d bytes (%.1f MiB)\n", b, h, g, s, s / 1048576 }' >&2
  fi
done
[ "$failed" -eq 0 ] || cs_die "some binaries need a glibc newer than $glibc"

# --- pack ---
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || cs_die "cannot read [workspace.package] version from Cargo.toml"
name="content-scaling-$version-x86_64-linux-gnu$glibc"
dist="$root/target/release-dist"
stage="$dist/$name"
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/config/environments" "$stage/man/man1" \
  "$stage/completions/bash" "$stage/completions/zsh" "$stage/completions/fish"
for binary in "${binaries[@]}"; do
  install -m 755 "$out/$binary" "$stage/bin/"
  # Man page and completions from the same clap definitions as --help (cli_args::generate).
  "$out/$binary" --generate man >"$stage/man/man1/$binary.1"
  "$out/$binary" --generate bash >"$stage/completions/bash/$binary"
  "$out/$binary" --generate zsh >"$stage/completions/zsh/_$binary"
  "$out/$binary" --generate fish >"$stage/completions/fish/$binary.fish"
done
cp config/*.yaml "$stage/config/"
cp config/environments/*.yaml "$stage/config/environments/"
cp -r systemd "$stage/"
cp crontab.example logrotate.example README.md CHANGELOG.md "$stage/"
tarball="$dist/$name.tar.gz"
tar -C "$dist" -czf "$tarball" "$name"
rm -rf "$stage"
cs_log "$(du -h "$tarball" | cut -f1) $tarball (build ${build_secs}s, total $((SECONDS - started))s)"
echo "$tarball"
