#!/usr/bin/env bash
# Install what ddbook needs into a project virtual environment, never into the
# system Python (Debian 12+ and Ubuntu 24.04 refuse that: PEP 668).
#
#   $PYTHON  the interpreter that creates the environment (default python3)
#   $VENV    where the environment lives (default .venv in the repository root)
#
# On Debian/Ubuntu as root it also apt-get installs what pip cannot: the venv
# module of $PYTHON if missing, Fashion-MNIST (the `default` profile's data) and
# Chromium (the browser test).  Run again, it only checks: pip runs when
# requirements.txt changed since the last successful install (its hash is kept
# in $VENV/.installed), so `make test` starts in a second on a set-up machine.
#
# Conda users: `conda env create -f environment.yml`, activate it, then
# `make test VENV="$CONDA_PREFIX"` uses that environment instead of .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
STAMP="$VENV/.installed"

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup: no '$PY' found; install Python 3.11 or run with PYTHON=/path/to/python3" >&2; exit 1
fi
pyver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# --- Debian packages (only as root with apt-get; otherwise say what is missing)
need=()
# Debian/Ubuntu ship `venv` without ensurepip until python3.X-venv is installed
[ -x "$VENV/bin/python" ] || "$PY" -c 'import ensurepip' >/dev/null 2>&1 || need+=("python${pyver}-venv")
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

# --- the virtual environment
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $PY (Python $pyver)"
  "$PY" -m venv "$VENV"
fi
have="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$have" != "$pyver" ]; then
  # never delete an environment on the user's behalf: it may be theirs (conda)
  echo "setup: $VENV holds Python $have but $PY is $pyver; remove $VENV (or pass PYTHON=) and run again" >&2
  exit 1
fi

# --- Python packages, only when requirements.txt changed
want="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "setup: pip install -r requirements.txt into $VENV (a fresh environment takes a few minutes)"
  if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt; then
    echo "setup: pip install -r requirements.txt failed" >&2; exit 1
  fi
  echo "$want" > "$STAMP"  # written last: an interrupted install is retried next time
fi
