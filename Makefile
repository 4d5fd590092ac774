# Targets used by the README and by CI (.ci/run calls `make test`).
GO ?= go
FUZZTIME ?= 3s
BIN ?= bin/bridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DOCKER ?= docker
COMPOSE ?= docker-compose
IMAGE ?= udp-discovery-bridge
# OCI labels of the image.
SOURCE ?= https://github.com/udp-discovery-bridge/bridge
LICENSES ?= NOASSERTION

.PHONY: build test unit e2e e2e-discover e2e-consul e2e-sinks e2e-docker e2e-k8s e2e-relay e2e-perf robustness robustness-k8s fuzz bench vet lint generate docs clean image consul-image demo demo-down

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags urfave_cli_no_docs -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/bridge

## image: the container image (Dockerfile: FROM scratch + bin/bridge), tagged $(VERSION) and dev.
# The legacy builder is enough (and the only one on some CI hosts); BuildKit builds it too.
image: build
	DOCKER_BUILDKIT=$${DOCKER_BUILDKIT:-0} $(DOCKER) build \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		--build-arg SOURCE=$(SOURCE) --build-arg LICENSES=$(LICENSES) \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):dev .

## consul-image: hashicorp/consul:1.20.6 built locally FROM scratch (for hosts that cannot pull).
consul-image:
	scripts/consul-image.sh

## demo: docker-compose.yml (Consul, three demo servers, the bridge). Pulls nothing when
## hashicorp/consul:1.20.6 is already present (make consul-image on an offline host).
demo: image
	$(COMPOSE) up -d
	@echo "Consul UI: http://127.0.0.1:8500/ui  -  dig @127.0.0.1 -p 8600 django.service.consul  -  metrics: http://127.0.0.1:9108/metrics"

demo-down:
	$(COMPOSE) down -v

## test: everything CI runs (scripts/test.sh): vet, unit tests (race), brief fuzzing, end-to-end tests (needs root).
test:
	scripts/test.sh

## generate: rewrite every generated file: from the key table, the chart's values, schema and
## key template, bridge.example.yaml and the key tables of docs/; from the registered metrics,
## docs/operations/metrics.md; and the chart README's values table. The tests that compare
## them fail when one is stale.
generate:
	$(GO) test ./internal/chartgen -run . -count=1 -update
	$(GO) test ./internal/config -run 'Example|KeyTables' -count=1 -update
	$(GO) test ./internal/metricsdoc -count=1 -update
	cd e2e && $(GO) test ./chart -run '^TestChartReadmeValues$$' -count=1 -update

## docs: build the documentation site (mkdocs.yml, docs/) with mkdocs --strict into site/,
## and check the links of README.md and the chart README (scripts/docs.sh).
docs:
	scripts/docs.sh site

## lint: golangci-lint v2 with .golangci.yml (built from its Go module once, then cached).
lint:
	scripts/lint.sh

vet:
	$(GO) vet ./...
	cd e2e && $(GO) vet ./...

unit:
	$(GO) test -race -count=1 ./...

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

## e2e: every end-to-end test but the Kubernetes lab's (as CI's e2e step), then e2e-k8s.
## One area at a time, each a package of e2e/ (needs root; each builds what it needs
## once, then caches it):
##   make e2e-discover  e2e/discover: discovery, scan, attacks, hardening, the library
##   make e2e-consul    e2e/consul: agent mode, catalog mode, ACLs, app checks, explain
##   make e2e-sinks     e2e/sinks (and e2e/chart's TestPrometheusRules): stdout, file,
##                      Prometheus, docs examples
##   make e2e-docker    e2e/docker: the image and the compose demo
##   make e2e-k8s       e2e/k8s: the Kubernetes lab, the sink and the chart, the DNSEndpoint
##                      through external-dns to BIND
##   make e2e-relay     e2e/relay: the relay across routed segments, a Consul cluster with
##                      ACLs, forged probes, a flood, encrypted mode, port 9999 shared
##   make e2e-perf      e2e/perf: the measurements (BRIDGE_PERF=1; they fail only on
##                      functional errors)
## Their helpers are e2e/internal/harness and e2e/internal/catalogh.
## RUN='<regexp>' runs those tests instead of the area's (make e2e-consul RUN='^TestAppCheckTLS$$').
## make e2e runs two packages at a time (-p 2), as CI does: each runs its tests
## GOMAXPROCS at a time; e2e/consul (about 9 minutes) beside the others.
E2E_GO_TEST = cd e2e && $(GO) test -count=1 -timeout 30m
run = -run '$(if $(RUN),$(RUN),$(1))'
e2e:
	$(E2E_GO_TEST) -p 2 -skip '^TestK8s' $$($(GO) list ./... | grep -v '/internal/k8slab$$')
	$(MAKE) e2e-k8s

e2e-discover:
	$(E2E_GO_TEST) $(call run,^Test(Discover|Scan|Attack|Harden|Library|NodeInterfaces)) ./discover/

e2e-consul:
	$(E2E_GO_TEST) $(call run,^Test(ACL|AppCheck|Consul|RunConsul|RunCatalog|Explain)) ./consul/

e2e-sinks:
	$(E2E_GO_TEST) $(call run,^Test(RunStdout|RunFile|RunEarly|RunRemoval|RunBad|Prometheus|Docs)) ./sinks/ ./chart/

e2e-docker:
	$(E2E_GO_TEST) $(call run,^Test(Image|Docker|Compose)) ./docker/

e2e-k8s:
	$(E2E_GO_TEST) -p 1 $(call run,^TestK8s) ./internal/k8slab/ ./k8s/ ./robustness/

e2e-relay:
	$(E2E_GO_TEST) $(call run,^TestRelay) ./relay/

e2e-perf:
	cd e2e && BRIDGE_PERF=1 $(GO) test -count=1 -timeout 60m $(call run,^TestPerf) -v ./perf/

## robustness: the robustness harness (e2e/robustness, docs/development/robustness.md): a
## catalog-mode fleet on a three-server ACL cluster under random faults, its history judged
## offline. Without SEED: CI's seeds (and the kept histories' verdicts). SEED=n DURATION=90s
## replays one run (DURATION: of faults, then the convergence bound); ROBUST_KEEP=1 keeps
## every history under e2e/robustness/testdata/kept.
SEED ?=
DURATION ?=
robustness:
	cd e2e && ROBUST_SEED=$(SEED) ROBUST_DURATION=$(DURATION) $(GO) test -count=1 -timeout 0 -run '^TestRobustness' -v ./robustness/

## robustness-k8s: the same harness with the kubernetes sink: the chart's DaemonSet on the
## four-node Kubernetes lab writing EndpointSlices (apiserver outages, DaemonSet rollouts, ...).
## SEED and DURATION as for robustness.
robustness-k8s:
	cd e2e && ROBUST_SEED=$(SEED) ROBUST_DURATION=$(DURATION) $(GO) test -count=1 -timeout 0 -run '^TestK8sRobustness' -v ./robustness/

bench:
	scripts/bench.sh

clean:
	rm -rf bin site
