#!/bin/sh
# Installs nginx with the nchan module (Debian's packages) for sse-bench's peer runtime
# (`--compare` runs the publish cases against nchan too; see bench/README.md).
# Idempotent: does nothing when the module is already there.
#
#   sh bench/setup-nchan.sh
set -eu
MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so
if command -v nginx >/dev/null 2>&1 && [ -f "$MODULE" ]; then
    echo "setup-nchan: nginx $(nginx -v 2>&1 | sed 's/.*\///') and $MODULE are installed"
    exit 0
fi
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "setup-nchan: installing nginx and libnginx-mod-nchan (apt-get)"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nginx libnginx-mod-nchan
# The bench starts its own nginx with its own config; the packaged service is not needed.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
    $SUDO systemctl stop nginx || true
fi
[ -f "$MODULE" ] || { echo "setup-nchan: $MODULE is missing after the install" >&2; exit 1; }
echo "setup-nchan: done"
