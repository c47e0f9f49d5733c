#!/bin/sh
# Build dist/trendbotd_<version>_<arch>.deb from the working tree (uncommitted changes
# included), then check it with lintian. The version comes from pyproject.toml.
# Needs the packages from packaging/install-build-deps.sh and access to the package
# index (pip, for the bundled environment). Environment: LINTIAN=0 skips the check.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

pyversion=$(/usr/bin/python3 -c \
    'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
# PEP 440 pre-releases sort before the release in Debian only with a tilde: 1.0rc1 -> 1.0~rc1
version=$(printf '%s' "$pyversion" | sed -E 's/^([0-9.]*[0-9])\.?((a|b|rc|dev)[0-9]*)/\1~\2/')
arch=$(dpkg --print-architecture)

work="$top/build/deb"
src="$work/trendbotd-$version"
rm -rf "$work"
mkdir -p "$src" "$top/dist"

# Only what the package is built from; no caches, no egg-info of the developer's venv.
tar -C "$top" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' -cf - \
    pyproject.toml README.md requirements trendbotd systemd debian packaging |
    tar -C "$src" -xf -

# The changelog exists only in the build copy: its version is pyproject.toml's.
# Its date (also SOURCE_DATE_EPOCH for the build) is the last commit's, for reproducibility.
epoch=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
cat >"$src/debian/changelog" <<CHANGELOG
trendbotd ($version) unstable; urgency=medium

  * Built from the source tree (version $pyversion from pyproject.toml).

 -- trendbotd maintainers <maintainers@trendbotd.invalid>  $(date -R -u -d "@$epoch")
CHANGELOG

start=$(date +%s)
(cd "$src" && dpkg-buildpackage --build=binary --no-sign >"$work/build.log" 2>&1) || {
    tail -n 60 "$work/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (full log: $work/build.log)" >&2
    exit 1
}
deb="trendbotd_${version}_${arch}.deb"
mv "$work/$deb" "$top/dist/$deb"
echo "build-deb: dist/$deb ($(du -h "$top/dist/$deb" | cut -f1), built in $(($(date +%s) - start)) s)" >&2

if [ "${LINTIAN:-1}" != 0 ]; then
    start=$(date +%s)
    lintian --fail-on error --info "$top/dist/$deb" >&2
    echo "build-deb: lintian: no errors ($(($(date +%s) - start)) s)" >&2
fi
