#!/usr/bin/env bash
# Builds erofs-utils 1.8.6 (mkfs.erofs, fsck.erofs, dump.erofs) from
# Debian's source tarball into ${MSB_TOOLS_DIR:-~/.cache/msb/tools}/erofs-utils-1.8.6
# and prints its bin directory on stdout; everything else goes to stderr.
# The tests need it: Debian bookworm's erofs-utils 1.5 cannot read images
# of 512-byte blocks (msb's tar-index layers). Skips the build when that
# directory already holds the tools. Usage:
#   export PATH="$(tests/tools/erofs-utils.sh):$PATH"
set -euo pipefail

version=1.8.6
url="http://deb.debian.org/debian/pool/main/e/erofs-utils/erofs-utils_${version}.orig.tar.gz"
prefix="${MSB_TOOLS_DIR:-$HOME/.cache/msb/tools}/erofs-utils-${version}"

if [ -x "$prefix/bin/mkfs.erofs" ] && [ -x "$prefix/bin/fsck.erofs" ] && [ -x "$prefix/bin/dump.erofs" ]; then
  echo "$prefix/bin"
  exit 0
fi

{
  missing=()
  for pkg in autoconf automake libtool pkg-config uuid-dev liblz4-dev make gcc; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
  fi

  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "erofs-utils.sh: building erofs-utils $version into $prefix"
  if command -v curl >/dev/null; then
    curl -fsSL -o "$work/src.tar.gz" "$url"
  else
    wget -q -O "$work/src.tar.gz" "$url"
  fi
  tar -xzf "$work/src.tar.gz" -C "$work"
  cd "$work/erofs-utils-$version"
  ./autogen.sh
  ./configure --prefix="$prefix" --disable-fuse --without-selinux
  make -j2
  # Installed into a staging directory first, so an interrupted build never
  # leaves a half-filled prefix that the check above would take as done.
  make install DESTDIR="$work/stage"
  mkdir -p "$(dirname "$prefix")"
  rm -rf "$prefix"
  mv "$work/stage$prefix" "$prefix"
  "$prefix/bin/mkfs.erofs" --version | head -1
} >&2

echo "$prefix/bin"
