# binderguard — see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/.tools
export ENVOY_BIN ?= $(TOOLS)/venv/bin/envoy
export KUBEBUILDER_ASSETS ?= $(TOOLS)/bin
CONTROLLER_GEN := $(GO) run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
BINARIES := binderguard fakebinder launchstorm

.PHONY: help build images tools test bench replay run lint manifests dashboards dashboard-png golden clean cluster-up cluster-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

build: ## build bin/binderguard, bin/fakebinder, bin/launchstorm
	@mkdir -p bin
	$(GO) build -o bin/ $(addprefix ./cmd/,$(BINARIES))

images: ## build image archives in bin/images/ without Docker (binderguard, fakebinder, test Envoy, pause, CoreDNS)
	@test/images/build.sh bin/images

tools: ## install Envoy, the Kubernetes binaries, etcd, the cluster runtime and Node packages into .tools/
	@test/tools/install.sh

test: tools ## run every test (unit, envtest, real Envoy end to end)
	$(GO) test -count=1 -timeout 25m ./...

# 60m: BenchmarkTimeToNotify waits out the shipped alert timings (about 20 minutes).
bench: build tools ## run the benchmarks and load comparisons, then the full incident replay (figures for the README)
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...
	@$(MAKE) --no-print-directory replay

# About 14 minutes: five legs of the 1,000-launch storm (the fifth, stale
# while building, waits out the gate's 60 s built window before its storm).
# REPLAY_NOTE='...' adds a sentence about the machine to the report.
replay: build ## replay the 2018-07-30 incident straight, through binderguard, and with stale while building; writes test/bench/REPLAY.md and its charts
	@test/tools/install.sh envoy
	$(GO) run ./cmd/replay --bin bin --out test/bench --command 'make replay' --note "$${REPLAY_NOTE:-}"

run: build ## simulator + Envoy + binderguard with a visible launch storm (installs only Envoy)
	@test/tools/install.sh envoy
	@test/run-local.sh

lint: ## gofmt check and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# The test cluster imports the archives `make images` writes to bin/images/.
cluster-up: tools build images ## start the single-node test cluster (root); prints KUBECONFIG= and BINDER_URL=
	@test/cluster/up.sh

cluster-down: ## stop the test cluster and remove all its state (safe when none runs)
	@test/cluster/down.sh

manifests: ## regenerate CRDs and deepcopy code from policies/, and the kustomize base and chart copies from manifests/chart
	$(CONTROLLER_GEN) object paths=./policies/api/... && $(CONTROLLER_GEN) crd paths=./policies/api/... output:crd:artifacts:config=manifests/crds
	@test/tools/install.sh helm
	$(GO) run ./manifests/render -helm $(TOOLS)/bin/helm

dashboards: ## regenerate manifests/dashboards/binderguard.json from manifests/dashboards/gen
	$(GO) run ./manifests/dashboards/gen -o manifests/dashboards/binderguard.json

dashboard-png: ## render the dashboard's panels from a local storm (real Envoy, Prometheus) to manifests/dashboards/binderguard.png
	$(GO) test ./test/dashboard -run TestEveryPanelHasDataDuringAStorm -count=1 -args -render $(CURDIR)/manifests/dashboards/binderguard.png

golden: ## regenerate the xDS translator's golden files (xds/translate/testdata/out)
	$(GO) test ./xds/translate -run TestGolden -args -update

clean: ## remove build output (keeps .tools/)
	rm -rf bin
