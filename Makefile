# One path for developers and CI (.ci/run): every setup step is a target here.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CLAUDE_CODE := hack/claude-code

.PHONY: help venv cluster-bin promtool helm kubeconform checkov chart cluster cluster-down claude-cli lint test bench simulate run demo-wall demo-drill clean

help:
	@echo "make run          start the local cluster (unless KUBECONFIG is set), a real node (root), stand-in API, CRDs, samples, operator (Ctrl-C stops)"
	@echo "make demo-wall    (while make run runs) a new session's account fills its window mid-run: watch it move"
	@echo "make demo-drill   (while make run runs) the same with a failover drill on the account"
	@echo "make test         lint, then every test except benchmarks (starts the local cluster itself)"
	@echo "make bench        benchmarks (tests/bench; BENCH_SIZES=100,1000 for a subset; docs/benchmarks.md)"
	@echo "make simulate     fleet simulation"
	@echo "make cluster      start or reuse the local cluster; kubeconfig in .local/kubeconfig"
	@echo "make cluster-down stop the local cluster"
	@echo "make node         start (or reuse) a real node (kubelet + containerd) of the local cluster; needs root"
	@echo "make node-down    stop it, leaving nothing on the host (docs/node.md)"
	@echo "make images       build images/*/Dockerfile without Docker (buildah) and import them into the node"
	@echo "make chart        copy the CRDs, RBAC rules, alerts and dashboard into charts/headroom (their one source stays)"
	@echo "make venv | cluster-bin | promtool | helm | kubeconform | checkov | claude-cli | node-bin | lint | clean"

# The stamp is newer than pyproject.toml once its dependencies are installed.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml dev/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python 3.11+ required ($(PYTHON) is $$($(PYTHON) --version))" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The root project was called `headroom` before it took a name free on PyPI; a venv made
	# then still has that distribution (and its editable metadata in operator/), which would
	# claim the same package.
	$(BIN)/pip uninstall --quiet --yes headroom 2>/dev/null || true
	rm -rf operator/headroom.egg-info
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet -e ./dev
	touch $@

# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, kwokctl,
# built from Go modules into a cache outside the repo (no-op when already built).
cluster-bin:
	hack/cluster/build.sh

# promtool (the alert tests run `promtool test rules`), built from its Go module into the
# same cache (no-op when already built).
promtool:
	hack/promtool/build.sh

# helm (the chart tests: lint, template, install, upgrade, uninstall) and kubeconform (schema
# checks of the rendered manifests), built from their Go modules into the same cache.
helm:
	hack/helm/build.sh

kubeconform:
	hack/kubeconform/build.sh

# checkov (PyPI) in a virtualenv of its own in the cache: its pins conflict with the dev tools'.
checkov:
	hack/checkov/install.sh

# The chart's copies of files the kustomize tree owns (CRDs, RBAC rules, alerts, dashboard);
# the chart tests fail while a copy differs from its source.
chart:
	$(PYTHON) hack/chart/sync.py

cluster: cluster-bin
	hack/cluster/up.sh

cluster-down:
	hack/cluster/down.sh

# The pinned Claude Code CLI. The stamp lives inside node_modules, which npm ci replaces.
claude-cli: $(CLAUDE_CODE)/node_modules/.headroom-installed
$(CLAUDE_CODE)/node_modules/.headroom-installed: $(CLAUDE_CODE)/package.json $(CLAUDE_CODE)/package-lock.json
	npm ci --prefix hack/claude-code --no-audit --no-fund
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: venv cluster-bin promtool helm kubeconform checkov claude-cli node-bin images
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest -m "not bench"

bench: venv cluster-bin claude-cli
	$(BIN)/pytest -m bench tests/bench -s

simulate: venv
	$(BIN)/headroom-dev simulate

run: venv cluster-bin node-bin
	hack/run.sh

# In a second terminal while `make run` runs (see README).
demo-wall: venv
	$(BIN)/python hack/demo.py wall

demo-drill: venv
	$(BIN)/python hack/demo.py drill

# Repo-local artefacts only; the Go binaries stay cached (~/.cache/headroom, keyed by version).
clean: cluster-down
	rm -rf $(VENV) .local $(CLAUDE_CODE)/node_modules .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.egg-info' -type d -prune -exec rm -rf {} +

# A real node (docs/node.md): kubelet, containerd, runc, CNI plugins, the pause image.
.PHONY: node-bin node node-down images

# Built from pinned versions into the cache (no-op when built).
node-bin:
	hack/node/build.sh

# Start (or reuse) a real node of the local cluster (or of KUBECONFIG's); needs root.
node: cluster-bin node-bin
	hack/node/up.sh

# Stop it and remove everything it had on the host (checked: exits 1 if something is left).
node-down:
	hack/node/down.sh

# The operator and agent images from images/*/Dockerfile without Docker (buildah on a trixie
# base made with debootstrap), cached; imported into the real node when it runs.
images: node-bin
	hack/images/build.sh --import
