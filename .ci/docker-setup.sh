#!/usr/bin/env bash
# Make a Docker engine available on a Debian bookworm machine (dev box or CI).
#
# Why: no container registry is reachable here, so images are built offline from debootstrap
# (see harness/celery_chaos/placements/docker/images.py); this installs the engine, debootstrap and docker-compose 1.29 from
# Debian's archive and starts dockerd when no engine answers. Idempotent: a second run only
# checks. Must run as root.
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_DEADLINE="${DOCKERD_DEADLINE:-60}"
PACKAGES=(docker.io debootstrap docker-compose)

log() { echo "[docker-setup] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

missing_packages() {
    local pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || echo "$pkg"
    done
}

install_packages() {
    local missing
    mapfile -t missing < <(missing_packages)
    if [ "${#missing[@]}" -eq 0 ]; then
        log "packages present: ${PACKAGES[*]}"
        return
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

engine_up() { docker info >/dev/null 2>&1; }

start_dockerd() {
    command -v dockerd >/dev/null || die "dockerd not found after installing docker.io"
    log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: dockerd must outlive this script and not get its terminal's signals.
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    local pid=$! waited=0
    until engine_up; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "dockerd (pid $pid) exited during startup; see $DOCKERD_LOG"
        fi
        if [ "$waited" -ge "$DOCKERD_DEADLINE" ]; then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "docker engine not answering after ${DOCKERD_DEADLINE}s; see $DOCKERD_LOG"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "dockerd (pid $pid) is up after ${waited}s"
}

main() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, dockerd)"
    install_packages
    if engine_up; then
        log "docker engine already answering"
    else
        start_dockerd
    fi
    docker version --format 'client {{.Client.Version}}, server {{.Server.Version}}' >&2
}

main "$@"
