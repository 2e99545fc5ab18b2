#!/usr/bin/env bash
# Stops the local control plane and removes its state; leaves no process behind.
#
#   down.sh                 stop unconditionally (make cluster-down)
#   down.sh --release PID   drop PID's lease (see up.sh); stop only if the
#                           cluster is test-owned and no live lease remains
#   down.sh --locked        internal: the caller (up.sh) already holds the lock
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mode="${1:-}"
if [ "$mode" != --locked ]; then take_lock; fi

if [ "$mode" = --release ]; then
  rm -f "$meta_dir/leases/${2:?--release needs a pid}"
  for lease in "$meta_dir"/leases/*; do
    [ -e "$lease" ] || continue
    if kill -0 "$(basename "$lease")" 2>/dev/null; then
      log "cluster still leased by pid $(basename "$lease"); leaving it running"
      exit 0
    fi
    rm -f "$lease" # its holder died without releasing
  done
  if [ ! -e "$meta_dir/test-owned" ]; then
    log "cluster $cluster_name was not started by the tests; leaving it running"
    exit 0
  fi
fi

if [ -d "$state_dir" ]; then
  # kwokctl reads the binary paths from the saved cluster config; no PATH needed
  # unless the cache was removed, in which case the fallback below still works.
  kwok_bin="$(cat "$meta_dir/bin" 2>/dev/null || true)"
  if [ -n "$kwok_bin" ] && [ -x "$kwok_bin/kwokctl" ]; then
    log "deleting cluster $cluster_name"
    "$kwok_bin/kwokctl" --name "$cluster_name" delete cluster >&2 || log "kwokctl delete failed; cleaning up by hand"
  fi
fi

# Whatever kwokctl could not stop (a crash mid-start, a deleted cache) is ours
# to end: every component runs from a path under this cluster's state dir.
pids="$(cluster_pids)"
if [ -n "$pids" ]; then
  log "terminating leftover processes: $(echo "$pids" | tr '\n' ' ')"
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 50); do
    [ -z "$(cluster_pids)" ] && break
    sleep 0.1
  done
  pids="$(cluster_pids)"
  # shellcheck disable=SC2086
  if [ -n "$pids" ]; then kill -9 $pids 2>/dev/null || true; fi
fi

rm -rf "$state_dir" "$meta_dir/leases" "$meta_dir/test-owned" "$meta_dir/kubeconfig" "$meta_dir/bin"
rm -f "$kubeconfig_out"
if [ -n "$(cluster_pids)" ]; then
  log "processes still running after down: $(cluster_pids | tr '\n' ' ')"
  exit 1
fi
log "cluster $cluster_name is down"
