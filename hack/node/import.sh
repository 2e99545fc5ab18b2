#!/usr/bin/env bash
# Imports OCI image archives into the node's containerd (namespace k8s.io, where the kubelet
# looks), skipping an archive whose image is already there with the same manifest digest.
# No registry is involved: pods use imagePullPolicy: Never (or IfNotPresent).
#
#   import.sh [--if-running] ARCHIVE...   (the node: HEADROOM_NODE_NAME / HEADROOM_CLUSTER_NAME)
#   --if-running   do nothing (exit 0) when the node is not running
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if_running=false
if [ "${1:-}" = --if-running ]; then if_running=true; shift; fi
socket="$state/containerd.sock"
if [ ! -S "$socket" ] || [ ! -f "$state/bin" ]; then
  $if_running && { log "node $node_name is not running; nothing imported"; exit 0; }
  log "node $node_name is not running (no $socket)"
  exit 1
fi
ctr=("$(cat "$state/bin")/bin/ctr" --address "$socket" -n k8s.io)

for archive in "$@"; do
  # The archive's image: name and manifest digest from its index.json.
  read -r name digest < <(tar -xOf "$archive" index.json | python3 -c '
import json, sys
m = json.load(sys.stdin)["manifests"][0]
a = m.get("annotations", {})
print(a.get("io.containerd.image.name") or a["org.opencontainers.image.ref.name"], m["digest"])')
  if [ "$("${ctr[@]}" images ls "name==$name" 2>/dev/null | awk 'NR == 2 {print $3}')" = "$digest" ]; then
    log "$name already on node $node_name"
    continue
  fi
  start=$SECONDS
  without_cgroup_v1_warning "${ctr[@]}" images import "$archive" >/dev/null
  log "imported $name into node $node_name in $((SECONDS - start))s"
done
