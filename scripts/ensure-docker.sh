#!/usr/bin/env bash
# Make a real Docker Engine available for the integration tests, and the tiny test image.
#
# - installs Debian's docker.io and busybox-static when missing (needs root, as on these machines);
# - starts dockerd when /_ping does not answer, logging to $DRAAS_DOCKERD_DIR/dockerd.log, with its PID in
#   $DRAAS_DOCKERD_DIR/dockerd.pid. An engine that already answers is left alone and no pidfile is written: the
#   test that restarts the engine finds dockerd's PID from the socket's peer (SO_PEERCRED), that pidfile or
#   /var/run/docker.pid, and signals it only once that PID is a running dockerd (never found by its name);
# - builds draas-test-busybox:latest with `docker import` from the busybox binary (no registry is reachable).
# Prints nothing on success beyond a line saying the engine is up. With CI=true any failure is fatal;
# otherwise it prints why and exits 3, and the Docker tests are skipped.
set -uo pipefail
DIR=${DRAAS_DOCKERD_DIR:-/tmp/draas-dockerd}
IMAGE=draas-test-busybox:latest
SOCK=/var/run/docker.sock
mkdir -p "$DIR"

fail() {
  echo "ensure-docker: $*" >&2
  exit 3
}

ping_engine() {
  curl -sf --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1
}

if ! command -v dockerd >/dev/null 2>&1 || ! command -v busybox >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || fail "docker.io is not installed and we are not root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$DIR/apt.log" 2>&1 || fail "apt-get update failed (see $DIR/apt.log)"
  apt-get install -y -qq docker.io busybox-static curl >>"$DIR/apt.log" 2>&1 \
    || fail "apt-get install docker.io busybox-static failed (see $DIR/apt.log)"
fi

if ! ping_engine; then
  # Its own session: a test runner killed with its process group must not take the engine down with it.
  setsid nohup dockerd --pidfile "$DIR/dockerd.pid" >>"$DIR/dockerd.log" 2>&1 &
  for _ in $(seq 150); do
    ping_engine && break
    sleep 0.2
  done
  ping_engine || fail "dockerd did not answer /_ping within 30 s (see $DIR/dockerd.log)"
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  root=$(mktemp -d)
  mkdir -p "$root/bin"
  cp "$(command -v busybox)" "$root/bin/busybox"
  for applet in sh sleep true false kill echo cat ls ps; do ln -s busybox "$root/bin/$applet"; done
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null \
    || fail "docker import of the busybox image failed"
  rm -rf "$root"
fi
echo "ensure-docker: engine up ($(docker version --format '{{.Server.Version}}' 2>/dev/null)), image $IMAGE ready"
