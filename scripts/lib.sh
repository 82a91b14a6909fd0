# Shared steps of the project's scripts: system packages, virtualenv, Docker
# engine, guest image. Sourced, not run. Every step is idempotent and says what
# it does on stderr.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CONCH_CONTAINER_VENV:-$ROOT/.venv}"
STATE="${CONCH_CONTAINER_STATE:-$ROOT/var}"
GUEST_IMAGE="${CONCH_CONTAINER_GUEST_IMAGE:-conch-container/guest:latest}"
DOCKER_SOCK="/var/run/docker.sock"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the gateway, its demo and its tests use, by the command that proves each.
declare -A PACKAGE_FOR=(
  [dockerd]=docker.io
  [docker]=docker.io
  [docker-registry]=docker-registry
  [sshd]=openssh-server
  [ssh]=openssh-client
  [sshpass]=sshpass
  [busybox]=busybox-static
  # The guest image's forwarding helper is a static program built with musl.
  [musl-gcc]=musl-tools
  [asciinema]=asciinema
  [curl]=curl
  # Debian ships promtool (which checks a metrics scrape) only with the server.
  [promtool]=prometheus
)
SFTP_SERVER=/usr/lib/openssh/sftp-server

missing_packages() {
  local cmd pkgs=()
  for cmd in "$@"; do
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
      pkgs+=("${PACKAGE_FOR[$cmd]}")
    fi
  done
  if [ ! -x "$SFTP_SERVER" ]; then pkgs+=(openssh-sftp-server); fi
  # busybox from Debian's "busybox" package is dynamic; the guest image needs the static one.
  if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then
    pkgs+=(busybox-static)
  fi
  printf '%s\n' "${pkgs[@]}" | sort -u | sed '/^$/d'
}

ensure_packages() {
  local pkgs
  pkgs=$(missing_packages "$@")
  [ -z "$pkgs" ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: $(echo $pkgs)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $pkgs >/dev/null
  else
    die "missing system packages; install them first, e.g.: sudo apt-get install $(echo $pkgs)"
  fi
}

ensure_venv() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtualenv $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$extras"
  if [ ! -f "$stamp" ] || [ "$ROOT/setup.cfg" -nt "$stamp" ] || [ -n "$(find "$ROOT/conch_container" "$ROOT/twisted" -newer "$stamp" -name '*.py' -print -quit)" ]; then
    say "installing conch-container[$extras] into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q "$ROOT[$extras]"
    touch "$stamp"
  fi
}

engine_answers() {
  [ -S "$DOCKER_SOCK" ] && docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

ensure_engine() {
  engine_answers && return 0
  command -v dockerd >/dev/null 2>&1 || die "no Docker engine answers and dockerd is not installed: apt-get install docker.io"
  [ "$(id -u)" -eq 0 ] || die "no Docker engine answers on $DOCKER_SOCK; start one (sudo dockerd) and run again"
  mkdir -p "$STATE"
  say "starting dockerd (log: $STATE/dockerd.log)"
  # vfs and no bridge: works inside unprivileged sandboxes and keeps containers on loopback only.
  nohup dockerd --storage-driver=vfs --bridge=none --iptables=false --ip6tables=false \
    >"$STATE/dockerd.log" 2>&1 &
  local i
  for i in $(seq 1 60); do
    engine_answers && return 0
    sleep 0.5
  done
  tail -20 "$STATE/dockerd.log" >&2
  die "dockerd did not become ready within 30 s"
}

# What the guest image is built from: a change rebuilds it.
guest_image_inputs() {
  cat "$ROOT/scripts/build-guest-image" "$ROOT"/guest/* | sha256sum | cut -c1-16
}

ensure_guest_image() {
  local inputs built
  inputs="$(guest_image_inputs)"
  built="$(docker image inspect -f '{{ index .Config.Labels "org.conch-container.inputs" }}' \
    "$GUEST_IMAGE" 2>/dev/null || true)"
  if [ "$built" = "$inputs" ] && [ -z "${CONCH_CONTAINER_REBUILD_IMAGE:-}" ]; then
    return 0
  fi
  say "building guest image $GUEST_IMAGE offline"
  GUEST_IMAGE_INPUTS="$inputs" "$ROOT/scripts/build-guest-image" "$GUEST_IMAGE"
}
