#!/usr/bin/env bash
# `make setup`: everything gefreg and its tests need on this machine. Safe to run again.
#  - system parts from Debian (root only): docker.io when no engine answers, docker-registry,
#    mmdebstrap, busybox-static, skopeo, chromium (the web catalog's browser tests),
#    diffoscope (`gefreg diff --content`);
#  - a Docker engine that answers `docker info` (an engine that already answers is left alone);
#  - .venv with gefreg, its test extras and the code linters (make lint-code).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 3; }

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# 1. System packages.
wanted=(docker-registry mmdebstrap busybox-static skopeo chromium diffoscope)
if engine_answers; then
  say "A Docker engine answers: leaving it alone"
else
  command -v dockerd >/dev/null 2>&1 || wanted+=(docker.io)
fi
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in "${wanted[@]}"; do installed "$pkg" || missing+=("$pkg"); done
else
  for tool in docker-registry mmdebstrap skopeo chromium diffoscope; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
fi
if ((${#missing[@]})); then
  [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1 ||
    die "missing ${missing[*]}; automatic installation needs Debian or Ubuntu (apt-get). Install them with your package manager, then run make setup again."
  [ "$(id -u)" = 0 ] ||
    die "missing ${missing[*]}; installing them needs root. Run: sudo apt-get install -y ${missing[*]}  (or run make setup as root)"
  say "Installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "System packages present: ${wanted[*]}"
fi

# 2. The Docker engine.
if ! engine_answers; then
  [ "$(id -u)" = 0 ] || die "no Docker engine answers and starting one needs root. Start Docker (sudo systemctl start docker) and run make setup again."
  say "Starting the Docker engine (log: /var/log/gefreg-dockerd.log)"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl start docker || true
  fi
  if ! engine_answers; then
    setsid dockerd >/var/log/gefreg-dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 60); do engine_answers && break; sleep 1; done
  engine_answers || die "the Docker engine did not start; see /var/log/gefreg-dockerd.log"
fi
say "Docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) answers"

# 3. The Python environment.
stamp=.venv/.gefreg-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  say "Creating .venv"
  python3 -m venv .venv || die "python3 -m venv failed: install python3-venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "Installing gefreg with its test and development extras into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
else
  say "gefreg is installed in .venv"
fi
# Bytecode, as an installed package has it: every gefreg process (the tests start many) then
# skips compiling, even under PYTHONDONTWRITEBYTECODE=1. Only changed modules are recompiled.
.venv/bin/python -m compileall -q gefreg >/dev/null
say "Ready: .venv/bin/gefreg --help"
