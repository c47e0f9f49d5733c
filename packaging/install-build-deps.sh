#!/bin/sh
# Install the Debian packages that building the .deb and running the system tests need.
# Idempotent and quick when everything is present: `apt-get update` runs only when a
# package is missing. Debian 12 (bookworm) host, run as root.
set -eu

# What each one is for:
#   debhelper dpkg-dev fakeroot   build the .deb (debhelper compat 13, dh_installsystemd)
#   python3.11 python3.11-venv    Debian's interpreter: the venv shipped in the .deb is made with it
#   lintian                       check the built .deb
#   systemd-container             systemd-nspawn (system tests) and systemd-analyze (unit checks)
#   mmdebstrap                    the Debian root the system tests boot
#   util-linux                    nsenter into the booted container
PACKAGES="debhelper dpkg-dev fakeroot python3.11 python3.11-venv lintian systemd-container mmdebstrap util-linux"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-build-deps: missing Debian packages:$missing (run this script as root)" >&2
    exit 1
fi

echo "install-build-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-build-deps: done" >&2
