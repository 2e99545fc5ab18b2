#!/usr/bin/env bash
# `make run`: everything live on one machine, in the foreground, until Ctrl-C.
#   - the local cluster (hack/cluster/up.sh), unless KUBECONFIG names another one;
#   - a real node of it (hack/node/up.sh: a kubelet and containerd; needs root), with the
#     images built from images/*/Dockerfile (hack/images/build.sh) imported;
#   - `headroom-dev sandbox-api`, the stand-in Anthropic API, holding the sample accounts' fake
#     tokens (read from manifests/samples/accounts.yaml, so both sides always agree), and a git
#     daemon with the demo repository, both on the host's address on the node's bridge (the
#     only address of this machine the node's pods reach);
#   - `headroom-dev provisioner`, hostPath volumes for the sessions' workspace claims;
#   - the CRDs and the samples in namespace headroom-demo;
#   - `headroom operator`, its agent pods steered to that node and pointed at the stand-in.
# Ctrl-C (or SIGTERM) stops the operator, deletes the demo's agent pods (their stand-in is
# going away), and stops the rest. The cluster and the node stay up: `make node-down` and
# `make cluster-down` stop them. In a second terminal, `make demo-wall` or `make demo-drill`
# moves a session live.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
ns="${HEADROOM_DEMO_NAMESPACE:-headroom-demo}"
venv="$root/.venv/bin"
run_dir="$root/.local/run"
mkdir -p "$run_dir"
say() { echo "[run] $*" >&2; }

local_agents=1
if [ -n "${KUBECONFIG:-}" ]; then
  say "using the cluster from KUBECONFIG=$KUBECONFIG"
  kubectl_bin="$(command -v kubectl || echo "$(hack/cluster/build.sh | tail -n1)/kubectl")"
  # The node joins whatever cluster it is given: never someone's real cluster unless asked.
  local_agents="${HEADROOM_RUN_LOCAL_AGENTS:-0}"
else
  if [ "$(id -u)" != 0 ]; then
    say "make run starts a real node (a kubelet and containerd, hack/node/up.sh): it needs root"
    say "run it as root (sudo make run), or point KUBECONFIG at a cluster with nodes"
    exit 1
  fi
  say "building the images (hack/images/build.sh; cached after the first run)"
  mapfile -t archives < <(hack/images/build.sh | grep '\.tar$')
  say "starting (or reusing) the real node headroom-node"
  HEADROOM_NODE_IMAGES="${archives[*]}" hack/node/up.sh >/dev/null
  shown_kubeconfig="$(hack/cluster/up.sh | tail -n1)"
  # A private copy: tests and `make cluster` may rewrite or remove the published one while
  # this runs (the cluster itself stays the same).
  cp "$shown_kubeconfig" "$run_dir/kubeconfig"
  chmod 600 "$run_dir/kubeconfig"
  export KUBECONFIG="$run_dir/kubeconfig"
  kubectl_bin="$(hack/cluster/build.sh | tail -n1)/kubectl"
fi
shown_kubeconfig="${shown_kubeconfig:-$KUBECONFIG}"
kubectl() { "$kubectl_bin" "$@"; }

pids=()
operator_index=-1
stop_all() {
  trap - EXIT INT TERM
  # Reverse start order: the operator first, so it does not react to the pods removed next.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid="${pids[$i]}"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    if [ "$i" = "$operator_index" ] && [ "$local_agents" = 1 ]; then
      kubectl -n "$ns" delete pods -l app.kubernetes.io/managed-by=headroom --wait=false \
        >/dev/null 2>&1 || true
    fi
  done
  rm -f "$run_dir/env.json"
  say "stopped everything make run started (the cluster and the node stay up: make node-down, make cluster-down)"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

extra=()
if [ "$local_agents" = 1 ]; then
  node_ip="$(kubectl get node headroom-node \
    -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')"
  say "node headroom-node is Ready; its pods reach this machine at $node_ip"

  say "starting the stand-in API with the sample accounts' tokens"
  "$venv/python" hack/demo.py sandbox-config manifests/samples/accounts.yaml >"$run_dir/sandbox.json"
  rm -f "$run_dir/sandbox-port.json"
  "$venv/headroom-dev" sandbox-api --config "$run_dir/sandbox.json" --host "$node_ip" --port 0 \
    --port-file "$run_dir/sandbox-port.json" >"$run_dir/sandbox.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$run_dir/sandbox-port.json" ] && break; sleep 0.1; done
  [ -s "$run_dir/sandbox-port.json" ] || { say "the stand-in did not start:"; cat "$run_dir/sandbox.log" >&2; exit 1; }
  sandbox_url="$("$venv/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$run_dir/sandbox-port.json")"
  say "stand-in API at $sandbox_url (log: $run_dir/sandbox.log)"

  say "starting a git server (git daemon) with the demo repository"
  rm -rf "$run_dir/git" && mkdir -p "$run_dir/git"
  "$venv/python" hack/demo.py git-repo "$run_dir/git/demo-app.git"
  git_port="$("$venv/python" -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$node_ip")"
  git daemon --reuseaddr --listen="$node_ip" --port="$git_port" --base-path="$run_dir/git" \
    --export-all --enable=receive-pack "$run_dir/git" >"$run_dir/git.log" 2>&1 &
  pids+=($!)
  git_url="git://$node_ip:$git_port"
  say "git server at $git_url (repository demo-app; log: $run_dir/git.log)"

  say "starting the volume provisioner (hostPath volumes under ~/.cache/headroom/volumes)"
  "$venv/headroom-dev" provisioner --kubeconfig "$KUBECONFIG" >"$run_dir/provisioner.log" 2>&1 &
  pids+=($!)
  extra=(
    --agent-image headroom-agent:dev
    --anthropic-base-url "$sandbox_url"
    --agent-node-selector '{"headroom.dev/node": "real"}'
    --agent-tolerations '[{"key": "headroom.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}]'
  )
  "$venv/python" -c 'import json,sys; json.dump(dict(zip(["kubeconfig","kubectl","namespace","sandbox_url","git_url"], sys.argv[1:6])), open(sys.argv[6], "w"))' \
    "$KUBECONFIG" "$kubectl_bin" "$ns" "$sandbox_url" "$git_url" "$run_dir/env.json"
fi

say "installing CRDs from crds/"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
metrics_port="$("$venv/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# Through a process substitution, not a pipe, so $! is the operator itself.
"$venv/headroom" operator --namespace "$ns" --metrics-port "$metrics_port" --liveness '' \
  "${extra[@]}" > >(tee "$run_dir/operator.log") 2>&1 &
pids+=($!)
operator_index=$((${#pids[@]} - 1))

# Accounts first, sessions once the operator has verified the accounts: sessions applied
# together with them would be placed on whichever account the operator happened to verify
# first (possibly the pay-per-token fallback).
say "applying the sample accounts to namespace $ns"
kubectl apply -f manifests/samples/accounts.yaml -n "$ns"
accounts="$(kubectl get -f manifests/samples/accounts.yaml -n "$ns" -o name | grep claudeaccount)"
# shellcheck disable=SC2086 # one name per word
kubectl wait -n "$ns" --for=jsonpath='{.status.phase}'=Available --timeout=120s $accounts >&2 \
  || say "not every sample account became Available; see the operator's log above"
say "applying the sample sessions (manifests/samples)"
kubectl apply -k manifests/samples -n "$ns"
if [ "$local_agents" = 1 ]; then
  say "applying fix-calc: a session that clones demo-app, fixes a bug, commits and pushes"
  "$venv/python" hack/demo.py repo-session fix-calc | kubectl apply -n "$ns" -f -
fi

kc="kubectl --kubeconfig ${shown_kubeconfig#"$root/"}"
cat >&2 <<EOF
[run] ------------------------------------------------------------------------------
[run] operator running on namespace $ns (metrics: http://127.0.0.1:$metrics_port/metrics)
[run] watch the sessions and accounts:  $kc -n $ns get headroom -w
[run] what happened, and why:           $kc -n $ns get events -w
[run] the pool at a glance (kubectl headroom; its flags go after "headroom"):
[run]   PATH=$venv:\$PATH KUBECONFIG=${shown_kubeconfig#"$root/"} kubectl headroom status -n $ns
[run] logs: $run_dir/{operator,sandbox,git,provisioner}.log; a pod's output: $kc -n $ns logs POD
[run] fix-calc pushes branch fix/fix-calc:  git -C $run_dir/git/demo-app.git log fix/fix-calc
[run] in a second terminal, move a session live:  make demo-wall   (or make demo-drill)
[run] Ctrl-C stops what make run started but the cluster and node; kubectl is in $(dirname "$kubectl_bin")
[run] ------------------------------------------------------------------------------
EOF
# Return as soon as any part dies (the EXIT trap stops the rest), or on Ctrl-C.
wait -n "${pids[@]}"
say "a component exited; stopping the rest"
exit 1
