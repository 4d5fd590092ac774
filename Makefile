# Targets used by the README and by CI (.ci/run calls `make test`).
GO ?= go
FUZZTIME ?= 5s
BIN ?= bin/bridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DOCKER ?= docker
COMPOSE ?= docker-compose
IMAGE ?= udp-discovery-bridge
# OCI labels of the image.
SOURCE ?= https://github.com/udp-discovery-bridge/bridge
LICENSES ?= NOASSERTION

.PHONY: build test unit e2e fuzz bench vet lint generate docs clean image consul-image demo demo-down

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

e2e:
	cd e2e && $(GO) test -count=1 -timeout 20m ./...

bench:
	scripts/bench.sh

clean:
	rm -rf bin site
