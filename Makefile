# moodsync — common tasks. `make demo` and `make test` work on a fresh
# machine with Go, Node and npm: the dev PDS installs itself on first use.

GO      ?= go
PKGS    ?= ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 10s
LDFLAGS := -s -w -X main.Version=$(VERSION)

.PHONY: all build build-production demo test test-short check check-deploy fmt vet fuzz bench pds pds-stop clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/moodsync ./cmd/moodsync

# The production binary leaves the embedded NATS and Mongo-wire servers out.
build-production:
	CGO_ENABLED=0 $(GO) build -tags production -trimpath -ldflags '$(LDFLAGS)' -o bin/moodsync ./cmd/moodsync

# A demo on embedded defaults against the local dev PDS.
demo:
	$(GO) run ./deploy/dev/demo

# Everything CI runs: formatting, vet, the race-enabled tests (against the
# real dev PDS, embedded NATS JetStream and FerretDB) and the production
# build.
test: check
	deploy/dev/install.sh
	$(GO) test -race -count=1 -timeout 25m $(PKGS)
	$(GO) build -tags production -o /dev/null ./cmd/moodsync

# The fast loop: every test that needs neither the dev PDS nor Node (those
# live in *_pds_test.go and skip under -short). Embedded NATS JetStream and
# the embedded Mongo-wire server are in-process Go, so this runs on a
# machine with Go alone.
test-short:
	$(GO) test -short -race -count=1 -timeout 10m $(PKGS)

check: fmt vet

fmt:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags production $(PKGS)

# Short fuzzing runs of every fuzz target (their seed corpora run in `test`).
# The deployment files in deploy/ against the code: settings and flags that
# exist, pinned images (asked of the registry where one is reachable), the
# NATS definitions against a real server, alert rules against the metrics
# moodsync registers, and the Kubernetes kustomization building.
check-deploy:
	$(GO) test -count=1 -run 'TestDeploy|TestNATSDefinitions' ./deploy/ ./cmd/moodsync/
	@if command -v kubectl >/dev/null 2>&1; then kubectl kustomize deploy/k8s >/dev/null && echo "kustomize: deploy/k8s builds"; else echo "kustomize: no kubectl, skipped"; fi
	deploy/check-images.sh

fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 90m $(PKGS)

pds:
	deploy/dev/start.sh

pds-stop:
	deploy/dev/stop.sh

clean:
	rm -rf bin moodsync-data
