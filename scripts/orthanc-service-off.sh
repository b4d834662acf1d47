#!/usr/bin/env bash
# Debian's orthanc package may start its own service (port 8042, /var/lib/orthanc). Amana
# never uses it: its tests start their own Orthanc, and an operator names theirs in
# AMANA_ARCHIVE_URL. Stopped and disabled so it holds no port and no disk; harmless when
# it is not running or the machine has no init system.
set -uo pipefail
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
  $SUDO systemctl disable --now orthanc >/dev/null 2>&1 || true
elif [ -x /etc/init.d/orthanc ]; then
  $SUDO /etc/init.d/orthanc stop >/dev/null 2>&1 || true
  $SUDO update-rc.d orthanc disable >/dev/null 2>&1 || true
fi
exit 0
