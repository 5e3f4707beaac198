# AegisBPF. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

CLANG       := clang-19
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(or $(shell git rev-parse --verify -q HEAD 2>/dev/null),unknown)
BIN         := bin/aegisbpf
GO_LDFLAGS  := -s -w -X github.com/aegisbpf/aegisbpf/agent/buildinfo.Version=$(VERSION) \
               -X github.com/aegisbpf/aegisbpf/agent/buildinfo.Commit=$(COMMIT)
FUZZTIME    ?= 10s
# package:FuzzName pairs run by `make fuzz`.
FUZZ_TARGETS ?= ./policy:FuzzParse ./policy/sign:FuzzEnvelope ./agent/events:FuzzDecode ./image/layer:FuzzParseManifest ./image/layer:FuzzParseSignature ./image/layer:FuzzParseVeritySuperblock ./agent/audit:FuzzReadJournal ./agent/update:FuzzParseChannel
STAGE       := tests/stage.sh

export CGO_ENABLED := 0

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install the Debian packages the project needs (idempotent)
	@tests/deps.sh

.PHONY: build
build: ## build the static aegisbpf binary into bin/
	go build -trimpath -ldflags '$(GO_LDFLAGS)' -o $(BIN) ./agent/cmd/aegisbpf
	@file $(BIN) 2>/dev/null | grep -q 'statically linked' || { echo "$(BIN) is not statically linked"; exit 1; }

.PHONY: generate
generate: deps ## regenerate the BPF objects and Go bindings with clang-19
	go generate ./bpf/...

.PHONY: check-generate
check-generate: deps ## fail if the committed BPF objects differ from a fresh generation
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cp go.mod go.sum "$$tmp/" && cp -r bpf "$$tmp/bpf" && \
	rm -f "$$tmp"/bpf/*_bpfel.go "$$tmp"/bpf/*_bpfel.o && \
	(cd "$$tmp" && go generate ./bpf/...) && \
	diff -r bpf "$$tmp/bpf" >/dev/null || { \
		echo "check-generate: bpf/ differs from a fresh 'make generate':"; \
		diff -rq bpf "$$tmp/bpf"; exit 1; }
	@echo "check-generate: generated BPF objects are up to date"

.PHONY: lint
lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

.PHONY: test-unit
test-unit: ## unit tests (no privileges, no VM)
	go test -count=1 ./...

.PHONY: test-ops
test-ops: deps ## promtool checks and tests of the alert rules; docs, dashboard and units true to the code
	promtool check rules docs/monitoring/alerts.yml
	promtool test rules docs/monitoring/alerts_test.yml
	go test -count=1 ./tests/docs

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (seed corpora always run in test-unit)
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		go test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x $$pkg || exit 1; \
	done

.PHONY: test-kernel
test-kernel: deps ## real BPF LSM tests in qemu on the 6.1 and 6.12 kernels
	go run ./tests/vm/cmd/vmtest -kernels all

.PHONY: test-fleet
test-fleet: deps ## fleet simulation: 1,000 updater processes, a real OCI registry, nginx and Prometheus; waves, gate, halt, replay
	AEGISBPF_FLEET=1 go test -count=1 -timeout 10m -v ./tests/fleet/...

.PHONY: test
test: deps ## everything CI runs: lint, check-generate, unit, ops (promtool, docs drift), fuzz, fleet simulation, kernel tests, e2e appliance tests
	@export STAGE_LOG=$$(mktemp) && trap 'rm -f "$$STAGE_LOG"' EXIT && \
	rc=0; for s in lint check-generate test-unit test-ops fuzz test-fleet test-kernel test-e2e; do \
		$(STAGE) $$s $(MAKE) --no-print-directory $$s || { rc=1; break; }; \
	done; \
	echo; echo "make test: stage times"; cat "$$STAGE_LOG"; \
	[ $$rc -eq 0 ] && echo "make test: PASS" || echo "make test: FAIL"; exit $$rc

.PHONY: demo
demo: deps ## build the signed appliance, boot it, show enforcement, metrics, an update and an automatic rollback
	go run ./tests/e2e/cmd/demo -out build/demo

.PHONY: clean
clean: ## remove build outputs (the download cache in ~/.cache/aegisbpf stays)
	rm -rf bin build

.PHONY: bench
bench: bench-go bench-decisions bench-pipeline bench-vm ## every benchmark (about 20 minutes, as root): rewrites their sections of docs/PERFORMANCE.md
	@echo "bench: updated docs/PERFORMANCE.md"

.PHONY: bench-decisions
bench-decisions: ## kernel decision cost on the host (BPF_PROG_TEST_RUN of the decision functions)
	@mkdir -p build
	go run ./tests/bench/cmd/decisionbench -o build/bench-decisions.md
	go run ./tests/perfdoc/cmd/perfdoc -file docs/PERFORMANCE.md -section decisions < build/bench-decisions.md

.PHONY: bench-pipeline
bench-pipeline: ## event pipeline on the host: a BPF producer at fixed rates against the agent's reader and aggregator
	@mkdir -p build
	go run ./tests/bench/cmd/pipelinebench -o build/bench-pipeline.md
	go run ./tests/perfdoc/cmd/perfdoc -file docs/PERFORMANCE.md -section pipeline < build/bench-pipeline.md

.PHONY: bench-vm
bench-vm: deps ## in the VM on both kernels: syscall overhead (no agent, audit, enforce at 1 to 100k rules), start-up, footprint
	@mkdir -p build
	go run ./tests/bench/cmd/vmbench -o build/bench-vm.md -log build/bench-vm.log
	go run ./tests/perfdoc/cmd/perfdoc -file docs/PERFORMANCE.md -section vm < build/bench-vm.md

.PHONY: bench-go
bench-go: ## Go micro-benchmarks of the event decoder, aggregator, policy parser and compiler (benchstat input in build/bench-go.txt)
	@mkdir -p build
	go test -run '^$$' -bench . -benchmem -count 5 ./agent/events ./policy | tee build/bench-go.txt
	@{ echo "## Go micro-benchmarks on the host"; echo; \
	  echo "\`make bench-go\` on $$(date -u '+%Y-%m-%d %H:%M UTC'), $$(nproc) CPUs, $$(go env GOVERSION): \`go test -bench . -benchmem -count 5\` of the event decoder and aggregator (\`agent/events\`) and the policy parser and compiler (\`policy\`, 100k rules; budget 100 ms for compile and apply). Raw output, as benchstat reads it (also in build/bench-go.txt)."; \
	  echo; echo '```'; grep -E '^(goos|goarch|pkg|cpu|Benchmark)' build/bench-go.txt; echo '```'; } | \
	  go run ./tests/perfdoc/cmd/perfdoc -file docs/PERFORMANCE.md -section go-bench

SOAK_MINUTES ?= 60

.PHONY: soak
soak: deps ## the appliance in audit mode under a mixed workload for SOAK_MINUTES (60); writes its section of docs/PERFORMANCE.md
	go run ./tests/e2e/cmd/soak -minutes $(SOAK_MINUTES) -out build/soak -doc docs/PERFORMANCE.md

# Left out of make test to keep the e2e stage within its budget, because the
# slot scenarios cover the same ground end to end: TestResetAndReboot (the
# driver's own reset test, three boots; the power-loss scenarios reset the
# machine too) and TestSysextMergeFromRun (the bare sysext mechanism; every
# slot activation merges a real layer). make test-e2e-all runs them.
E2E_SKIP ?= TestResetAndReboot|TestSysextMergeFromRun

.PHONY: test-e2e
test-e2e: deps ## boot the appliance with systemd in qemu and drive it (minutes; first run builds the base root)
	AEGISBPF_E2E=1 go test -count=1 -timeout 30m -v -skip '$(E2E_SKIP)' ./tests/e2e/

.PHONY: test-e2e-all
test-e2e-all: deps ## every e2e test, including the power-loss driver test
	$(MAKE) --no-print-directory test-e2e E2E_SKIP=NONE

.PHONY: demo-shell
demo-shell: deps ## boot the demo's appliance (or the bare one) with a root shell on its serial console
	@if [ -f build/demo/appliance/appliance.json ]; then \
		go run ./tests/e2e/cmd/appliance-shell -appliance build/demo/appliance; \
	else \
		echo "demo-shell: no build/demo/appliance yet ('make demo' builds it); booting the bare appliance"; \
		go run ./tests/e2e/cmd/appliance-shell; \
	fi
