# Voluntree. The two commands of the README:
#   make run    build and start the server on its embedded default (http://localhost:8080)
#   make test   install what the tests need and run every test
# Both install what is missing (Debian packages, the patched gotch) and skip what is present.

SHELL := /bin/bash
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
GOFMT := $(dir $(GO))gofmt
# Tests build the binary with `go`: make the toolchain found above visible to them.
export PATH := $(dir $(GO)):$(PATH)
GOTCH_DIR := .build/gotch
BIN := bin/voluntree

# Debian packages: redis-server (embedded default and tests), libtorch-dev (gotch), g++ (cgo),
# prometheus (promtool, to check /metrics in tests), chromium (the page's browser test),
# curl (health probes in scripts), ca-certificates (the Go module proxy over TLS), python3
# (free ports in scripts).
APT_RUN  := redis-server libtorch-dev g++ curl ca-certificates python3
APT_TEST := $(APT_RUN) prometheus chromium
# python3-torch is only needed to regenerate ml/testdata (make testdata).
APT_TESTDATA := python3-torch

export CGO_ENABLED := 1
# The pipeline's end-to-end tests that `make test` also runs on a Redis Cluster and on Sentinel
# (the whole cmd/voluntree suite runs on one server): webhook to live feed, a killed node, the
# publisher across a restart, webhook and poller together, web chat and Messenger to a booking
# (the admin's walk in the browser).
DEPLOYMENT_E2E := ^(TestWebhookToWebSocket|TestKilledNodeLosesNothing|TestScheduledPostPublishedOnceAcrossRestart|TestWebhookAndPollingTakeEffectOnce|TestWebChatToBookedSlot|TestAdminWalksTheDashboardInABrowser)$$
GOTEST_FLAGS ?= -count=1 -timeout 15m

.PHONY: run test build deps deps-test gotch gotch-discover train testdata proto bench loadgen loadgen-ab loadgen-cluster loadgen-conversations fuzz clean help docker-context docker-image compose-up compose-down compose-test compose-bench model-swap-bench

help:
	@echo "make run | make test | make build | make train | make bench | make loadgen | make loadgen-ab REF=<commit> | make loadgen-conversations | make compose-up [LOCAL_IMAGES=1] | make compose-down | make compose-test | make compose-bench | make model-swap-bench [SWAP_RATE=2500] [SWAP_NODES=3] | make fuzz [FUZZTIME=10m] | make testdata | make proto | make clean"

run: build
	./$(BIN) serve

build: deps gotch
	$(GO) build -o $(BIN) ./cmd/voluntree
	$(GO) build -o bin/loadgen ./cmd/loadgen

test: deps-test gotch
	@echo "== gofmt"; out=$$($(GOFMT) -l $$(find . -name '*.go' -not -path './.build/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "== go vet"; $(GO) vet ./...
	@echo "== go test"; $(GO) test $(GOTEST_FLAGS) ./...
	@echo "== go test -race (concurrent packages)"; $(GO) test -race $(GOTEST_FLAGS) ./actors ./cluster ./redisstore ./facebook ./httpapi ./mail ./internal/...
	@for d in cluster sentinel; do \
	  echo "== the store's suite and the pipeline's end-to-end suite on Redis $$d"; \
	  VOLUNTREE_TEST_REDIS=$$d $(GO) test $(GOTEST_FLAGS) ./redisstore && \
	  VOLUNTREE_TEST_REDIS=$$d $(GO) test $(GOTEST_FLAGS) -run '$(DEPLOYMENT_E2E)' ./cmd/voluntree || exit 1; \
	done
	@$(MAKE) --no-print-directory compose-test

# Installs the listed Debian packages that are not installed yet (apt-get update only then).
define apt_install
	@command -v $(GO) >/dev/null || { echo "Go is required (https://go.dev/dl), see README"; exit 1; }
	@missing=""; for p in $(1); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
endef

deps:
	$(call apt_install,$(APT_RUN))

deps-test:
	$(call apt_install,$(APT_TEST))

# A CPU build of gotch against Debian's libtorch, in a git-ignored folder (see build/gotch).
gotch: $(GOTCH_DIR)/.voluntree-stamp
$(GOTCH_DIR)/.voluntree-stamp: build/gotch/prepare.sh build/gotch/stubs.txt
	build/gotch/prepare.sh $(GOTCH_DIR)

# Recompute the list of gotch functions that do not compile against the installed libtorch.
gotch-discover: deps
	build/gotch/prepare.sh --discover

# Retrain the shipped model (seeded: the same data and seed give the same model).
train: build
	./$(BIN) train

# Regenerate the TorchScript test model and its golden predictions with Debian's PyTorch.
testdata: deps gotch
	$(call apt_install,$(APT_TESTDATA))
	/usr/bin/python3 ml/testdata/make_torchscript.py

# Regenerate the grains' protobuf messages and typed grain clients (committed) after editing
# cluster/grainpb/grains.proto. protoc-gen-go-grain is pinned to the protoactor-go version of go.mod.
PROTOC_GEN_GO    := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GRAIN := github.com/asynkron/protoactor-go/protobuf/protoc-gen-go-grain@v0.0.0-20240822202345-3c0e61ca19c9
proto:
	$(call apt_install,protobuf-compiler)
	GOBIN=$(CURDIR)/.build/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/.build/bin $(GO) install $(PROTOC_GEN_GRAIN)
	PATH=$(CURDIR)/.build/bin:$$PATH protoc -I cluster/grainpb \
	  -I $$($(GO) env GOMODCACHE)/github.com/asynkron/protoactor-go@v0.0.0-20240822202345-3c0e61ca19c9 \
	  --go_out=cluster/grainpb --go_opt=paths=source_relative \
	  --go-grain_out=cluster/grainpb --go-grain_opt=paths=source_relative \
	  cluster/grainpb/grains.proto

# Benchmarks of BENCHMARKS.md: 6 runs each (this kind of VM is noisy), summarised by benchstat.
BENCH_COUNT ?= 6
bench: deps-test gotch
	GOBIN=$(CURDIR)/.build/bin $(GO) install golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 2s -count $(BENCH_COUNT) ./ml ./actors ./httpapi | tee .build/bench.txt
	.build/bin/benchstat .build/bench.txt

# The live pipeline's figures (BENCHMARKS.md): loadgen against serve on a private Redis.
# python3 (free ports) and redis-tools come with the packages above.
loadgen: build
	scripts/loadgen.sh $(RATES)

RATE ?= 2500
# The pipeline on a local 3-master Redis Cluster against one standalone Redis, interleaved:
#   make loadgen-cluster [RATE=2500] [ROUNDS=3] [CLUSTER_REPLICAS=0]
loadgen-cluster: build
	scripts/loadgen-cluster.sh $(RATE)

# A/B of the live pipeline against an older commit, interleaved in one sitting:
#   make loadgen-ab REF=0b16356 [RATE=2500] [ROUNDS=3] [DURATION=10s]
loadgen-ab: build
	@[ -n "$(REF)" ] || { echo "usage: make loadgen-ab REF=<commit> [RATE=2500] [ROUNDS=3]"; exit 2; }
	scripts/loadgen-ab.sh $(REF) $(RATE)

# Simulated volunteers through the whole conversation (Messenger and web chat) against a serve
# the load generator starts with its own Redis, fake Graph API and SMTP sink; serve is killed
# and restarted mid-run (BENCHMARKS.md):
#   make loadgen-conversations [VOLUNTEERS=10000] [CONV_RATE=500] [KILL_AFTER=40s]
VOLUNTEERS ?= 10000
CONV_RATE ?= 500
KILL_AFTER ?= 40s
loadgen-conversations: build
	bin/loadgen conversations -voluntree $(BIN) -volunteers $(VOLUNTEERS) -rate $(CONV_RATE) -concurrency 400 -kill-after $(KILL_AFTER)

# The cluster (compose/): three nodes behind an haproxy ingress, Redis with AOF, Prometheus and
# Grafana. `make compose-up` builds the node image (compose/Dockerfile, modules vendored into
# the build context) and starts it all: the dashboard on http://localhost:8080, Grafana on
# http://localhost:3000. Without an image registry, LOCAL_IMAGES=1 builds Debian bases with
# debootstrap (scripts/docker-base.sh) and runs Redis, the ingress and Prometheus from them
# (compose/docker-compose.test.yml; no Grafana).
COMPOSE_FILES := -f compose/docker-compose.yml $(if $(LOCAL_IMAGES),-f compose/docker-compose.test.yml)
COMPOSE := docker-compose -p voluntree $(COMPOSE_FILES)
DOCKER_BUILD_ARGS := $(if $(LOCAL_IMAGES),--build-arg BUILD_BASE=voluntree-build:bookworm --build-arg RUN_BASE=voluntree-base:bookworm)

docker-context: gotch
	rm -rf .build/docker/vendor
	$(GO) mod vendor -o .build/docker/vendor

docker-image: docker-context
	$(if $(LOCAL_IMAGES),scripts/docker-base.sh)
	docker build -q -f compose/Dockerfile $(DOCKER_BUILD_ARGS) --target build -t voluntree-build-stage:dev .
	docker build -q -f compose/Dockerfile $(DOCKER_BUILD_ARGS) -t voluntree:dev .
	docker image prune -f --filter label=voluntree.stage >/dev/null

compose-up: docker-image
	$(COMPOSE) up -d
	@echo "dashboard http://localhost:$${VOLUNTREE_PORT:-8080}  Grafana http://localhost:$${GRAFANA_PORT:-3000}  Prometheus http://localhost:$${PROMETHEUS_PORT:-9090}"

compose-down:
	$(COMPOSE) down -v

# The fault tests of the compose cluster (compose/faults_test.go): the node image on the bases
# built without a registry, then kill, partition, rolling restart and Redis kill under load.
# Each run is its own compose project, removed at the end.
compose-test:
	@echo "== compose fault tests (the node image, then the cluster in containers)"
	$(MAKE) --no-print-directory docker-image LOCAL_IMAGES=1
	VOLUNTREE_COMPOSE_IMAGE=voluntree:dev $(GO) test $(GOTEST_FLAGS) -v -run . ./compose

# One node against three on the compose cluster, the same loadgen over capacity, one sitting
# (BENCHMARKS.md): make compose-bench [BENCH_RATE=3500]
BENCH_RATE ?= 3500
compose-bench:
	$(MAKE) --no-print-directory docker-image LOCAL_IMAGES=1
	VOLUNTREE_COMPOSE_IMAGE=voluntree:dev VOLUNTREE_BENCH_RATE=$(BENCH_RATE) $(GO) test -count=1 -timeout 20m -v -run '^$$' -bench OneAgainstThree -benchtime 1x ./compose

# The model registry's hot swap under the loadgen (BENCHMARKS.md): promote, promote, rollback
# while comments arrive at SWAP_RATE a second; make test runs it at 500/s.
SWAP_RATE ?= 2500
SWAP_NODES ?= 1
model-swap-bench: deps-test gotch
	VOLUNTREE_SWAP_RATE=$(SWAP_RATE) VOLUNTREE_SWAP_NODES=$(SWAP_NODES) $(GO) test -count=1 -v -run TestModelSwapUnderLoad ./cmd/voluntree

# Every fuzz target for FUZZTIME each (make test replays their corpora as plain tests).
FUZZTIME ?= 1m
fuzz: deps-test gotch
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

clean:
	rm -rf bin .build
