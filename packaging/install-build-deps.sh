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
#   etcd-server etcd-client       the cluster tests run their own 3-member etcd on free ports
PACKAGES="debhelper dpkg-dev fakeroot python3.11 python3.11-venv lintian systemd-container mmdebstrap util-linux etcd-server etcd-client"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *) missing="$missing $p" ;;
    esac
done

# The package enables and starts a system etcd on port 2379; the tests start their own
# members on free ports, so the system one must never run on a build or CI host.
stop_system_etcd() {
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now etcd.service >/dev/null 2>&1 || true
    fi
    # Without systemd as PID 1 (a container) the unit is only enabled, not started, and
    # systemctl fails: drop the enablement links so a later boot does not start it either.
    rm -f /etc/systemd/system/multi-user.target.wants/etcd.service /etc/systemd/system/etcd2.service
}

if [ -z "$missing" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        stop_system_etcd
    fi
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-build-deps: missing Debian packages:$missing (run this script as root)" >&2
    exit 1
fi

echo "install-build-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Refuse service starts during the install (unless a policy already exists, as in
# containers), so the system etcd never binds port 2379 even for a moment.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -qq --no-install-recommends $missing >/dev/null
if [ -n "$own_policy" ]; then
    rm -f "$policy"
fi
stop_system_etcd
echo "install-build-deps: done" >&2
