#!/usr/bin/env bash
# Installs the system services the integration tests start on loopback (RabbitMQ from Debian's
# packages). PostgreSQL comes from the `pgserver` wheel, installed with the dev extras.
#
# Idempotent: when RabbitMQ is already installed this returns at once. The tests start their own
# broker (own data folder, free port, loopback only), so the package's system-wide broker is kept
# from starting at install time and stopped if something started it anyway: a broker on the default
# port 5672 is not needed and would only collide.
set -euo pipefail

if command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] \
    || [ -d /usr/lib/rabbitmq ]; then
    exit 0
fi

# Use sudo only when not root (CI containers and fresh machines usually run as root without sudo).
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "ensure-services: rabbitmq-server is missing and installing it needs root or sudo" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

echo "ensure-services: installing rabbitmq-server (Debian package) for the integration tests" >&2

# policy-rc.d answering 101 tells invoke-rc.d not to start services during installation. Keep any
# policy that was already there and put it back afterwards.
POLICY=/usr/sbin/policy-rc.d
POLICY_BACKUP=""
if [ -e "$POLICY" ]; then
    POLICY_BACKUP="$(mktemp)"
    "${SUDO[@]}" cp -p "$POLICY" "$POLICY_BACKUP"
fi
restore_policy() {
    if [ -n "$POLICY_BACKUP" ]; then
        "${SUDO[@]}" cp -p "$POLICY_BACKUP" "$POLICY"
        rm -f "$POLICY_BACKUP"
    else
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
"${SUDO[@]}" chmod 0755 "$POLICY"

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    rabbitmq-server >/dev/null

# Belt and braces: on systems where policy-rc.d is not honoured (systemd-run units), stop the
# system broker and the epmd it may have left behind so they hold no ports.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl stop rabbitmq-server >/dev/null 2>&1 || true
    "${SUDO[@]}" systemctl disable rabbitmq-server >/dev/null 2>&1 || true
else
    "${SUDO[@]}" service rabbitmq-server stop >/dev/null 2>&1 || true
fi

# The package's maintainer scripts run rabbitmqctl, which leaves an epmd daemon listening on
# 0.0.0.0:4369. The tests run their own on loopback; this one only holds a port open. With no
# node registered, `epmd -kill` stops it.
EPMD="$(command -v epmd || echo /usr/lib/erlang/bin/epmd)"
if [ -x "$EPMD" ]; then
    "$EPMD" -kill >/dev/null 2>&1 || true
fi

echo "ensure-services: rabbitmq-server installed" >&2
