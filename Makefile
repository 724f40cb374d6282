# Developer entry points. `make test` and `make demo` install what they need.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBIN := $(shell $(GO) env GOPATH)/bin
export PATH := $(PATH):$(GOBIN)
export CGO_ENABLED ?= 0

.PHONY: build deps test check fmt vet staticcheck race cross bench demo demo-connectivity fuzz clean image qemu

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kanto ./services/cmd/kanto
	@./bin/kanto help | awk '/^  [a-z]/ && $$1 != "help" && $$1 != "version" {print $$1}' | \
	  while read -r n; do ln -sf kanto bin/$$n; done

deps:
	@bash scripts/deps.sh

# The README's test command: vet, staticcheck, the race detector over every
# test, short fuzz runs, and cross-compiles.
test: deps check fuzz

check: fmt vet staticcheck cross race

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	staticcheck ./...

cross:
	@for a in amd64 arm64 arm; do echo "cross: linux/$$a"; \
	  GOOS=linux GOARCH=$$a GOARM=7 CGO_ENABLED=0 $(GO) build -o /dev/null ./services/cmd/kanto || exit 1; done

race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./...
	@# Under -race the OTA kill test runs a few scenarios only (its children
	@# are slow to start); here all of them, without the race detector.
	$(GO) test -count=1 -run 'TestKillAtEveryState' ./ota/

# Each fuzz target runs a few seconds on its seed corpus plus new inputs.
FUZZTIME ?= 5s
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@for s in bench/*.sh; do [ -x "$$s" ] && "$$s"; done; true

# The firmware campaign in QEMU (see README); demo-connectivity is the
# connector and cloud peer on loopback, without QEMU.
demo: deps build
	@bash scripts/demo.sh

demo-connectivity: deps build
	@bash scripts/demo.sh -connectivity

# The A/B firmware disk image (cached; see images/README.md) and booting it
# on the serial console (Ctrl-A X quits). IMAGE_FLAGS adds build flags.
image: build
	./bin/kanto image build $(IMAGE_FLAGS)

qemu: image
	./bin/kanto image qemu $(QEMU_FLAGS) out/image/disk.img

clean:
	rm -rf bin out
