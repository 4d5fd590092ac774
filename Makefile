# Targets used by the README and by CI (.ci/run calls `make test`).
GO ?= go
FUZZTIME ?= 5s
BIN ?= bin/bridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DOCKER ?= docker
IMAGE ?= udp-discovery-bridge
# OCI labels of the image.
SOURCE ?= https://github.com/udp-discovery-bridge/bridge
LICENSES ?= NOASSERTION

.PHONY: build test unit e2e fuzz bench vet clean image

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/bridge

## image: the container image (Dockerfile: FROM scratch + bin/bridge), tagged $(VERSION) and dev.
# The legacy builder is enough (and the only one on some CI hosts); BuildKit builds it too.
image: build
	DOCKER_BUILDKIT=$${DOCKER_BUILDKIT:-0} $(DOCKER) build \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		--build-arg SOURCE=$(SOURCE) --build-arg LICENSES=$(LICENSES) \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):dev .

## test: everything CI runs (scripts/test.sh): vet, unit tests (race), brief fuzzing, end-to-end tests (needs root).
test:
	scripts/test.sh

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
	rm -rf bin
