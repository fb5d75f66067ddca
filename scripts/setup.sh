#!/usr/bin/env bash
# Install what ddbook needs: Python packages (pinned) and, on Debian as root,
# Fashion-MNIST (the `default` profile's data) and Chromium (the browser test).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if ! "$PY" -m pip install -q --disable-pip-version-check -r requirements.txt; then
  echo "setup: pip install -r requirements.txt failed" >&2; exit 1
fi
need=()
[ -d /usr/share/datasets/fashion-mnist ] || [ -n "${DDLIB_DATA:-}" ] || need+=(dataset-fashion-mnist)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get install ${need[*]}"
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
  else
    echo "setup: please install ${need[*]} (Debian packages); Fashion-MNIST may instead be put in \$DDLIB_DATA" >&2
  fi
fi
