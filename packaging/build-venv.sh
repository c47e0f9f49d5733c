#!/bin/sh
# Build the package's private Python environment.
#   packaging/build-venv.sh STAGE PREFIX
# makes in STAGE (e.g. debian/trendbotd/usr/lib/trendbotd) a virtual environment that
# works once installed at PREFIX (/usr/lib/trendbotd): Debian's /usr/bin/python3.11, the
# pinned runtime set (requirements/runtime.lock) and the project itself, byte-compiled.
# pip reaches the package index here, at build time; installing the .deb needs no network.
# Run from the source tree (debian/rules does).
set -eu

stage=$1
prefix=$2
python=/usr/bin/python3.11  # Debian's interpreter, never a pyenv/other build on PATH

# The builder's environment must not change what goes into the package.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV PYTHONUSERBASE
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

rm -rf "$stage"
mkdir -p "$(dirname "$stage")"
"$python" -m venv "$stage"
pip="$stage/bin/python3 -m pip --quiet"
# Binary wheels where they exist (no compiler needed); sdnotify is published as sdist only.
$pip install --no-compile --prefer-binary --no-warn-script-location -r requirements/runtime.lock
$pip install --no-compile --no-deps --no-warn-script-location .
$pip uninstall --yes pip setuptools

# Only the interpreter links and our entry point stay in bin/ (activate scripts and the
# dependencies' tools would carry the staging path and are not needed).
for f in "$stage"/bin/*; do
    case "$(basename "$f")" in
        python | python3 | python3.11 | trendbotd) ;;
        *) rm -f "$f" ;;
    esac
done
# Entry point: the interpreter of the installed environment, not of the staging copy.
sed -i "1s|^#!.*|#!$prefix/bin/python3|" "$stage/bin/trendbotd"
sed -i "s|^command = .*|command = $python -m venv $prefix|" "$stage/pyvenv.cfg"
# pip records where the project was installed from (a build path): not needed at run time.
find "$stage/lib" -name direct_url.json -delete
# Headers of the interpreter are only for building extensions into it: none will be.
rm -rf "$stage/include"
# Modules are imported, never executed as scripts: some wheels ship them executable
# (with or without a #! line for some other python).
find "$stage/lib" -type f -name '*.py' -perm /111 -exec chmod a-x {} +

# Byte-compile once, at build time: the service user cannot write next to the sources,
# and importing ccxt uncompiled takes seconds on every start. unchecked-hash: dpkg may
# clamp the sources' mtimes (SOURCE_DATE_EPOCH), so timestamps would not match, and a
# package upgrade replaces .py and .pyc together anyway.
"$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash \
    -s "$stage" -p "$prefix" "$stage/lib" >/dev/null

leftover=$(grep -rl --binary-files=text -F "$stage" "$stage" 2>/dev/null | head -5 || true)
if [ -n "$leftover" ]; then
    echo "build-venv: staging path $stage still referenced in:" >&2
    echo "$leftover" >&2
    exit 1
fi
