# Targets used by the README and by CI (.ci/run calls `make test`).
GO ?= go
FUZZTIME ?= 5s
BIN ?= bin/bridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build test unit e2e fuzz bench vet clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/bridge

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
