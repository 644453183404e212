# ContainerProvider
#
#   make run     build, seed catalogd on first run, start the daemons on loopback
#   make demo    replay the reference session against fresh daemons
#   make test    go vet, gofmt, the whole suite with -race, interop with real clients,
#                and the module's Pester tests where pwsh is installed
#   make bench   benchmarks (slow; results in bench/results/)
#   make soak    install/remove churn, resources checked flat (SOAK_DURATION=10m SOAK_CLIENTS=8; bench/results/soak.md)
#   make lint    go vet, gofmt and a Windows build of the commands
#   make fuzz    fuzz the archive reader (FUZZTIME=60s)

GO      ?= go
BIN     := $(CURDIR)/bin
TOOLS   := $(CURDIR)/.tools/bin
CMDS    := catalogd providerd cimage
export GOFLAGS := -buildvcs=false

.PHONY: all build run demo test tools lint bench fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

run: build
	@scripts/run.sh

demo: build
	@scripts/demo.sh

tools:
	@scripts/install-tools.sh crane oras conformance registry cosign skopeo powershell-grammar mono

# Windows hosts are where the cmdlets mostly run: the commands must keep
# building there (named pipes instead of unix sockets).
lint:
	$(GO) vet ./...
	GOOS=windows $(GO) build -o /dev/null ./cmd/catalogd
	GOOS=windows $(GO) build -o /dev/null ./cmd/providerd
	GOOS=windows $(GO) build -o /dev/null ./cmd/cimage
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The e2e tests in test/e2e start the real binaries from $(BIN) and use the
# real clients from $(TOOLS): crane, oras, cosign, the OCI conformance suite
# and the CNCF distribution registry, and skopeo from Debian's packages.
test: lint build tools
	node --no-deprecation scripts/check-powershell.mjs
	CP_BIN_DIR=$(BIN) scripts/test-powershell.sh
	CP_BIN_DIR=$(BIN) CP_TOOLS_DIR=$(TOOLS) $(GO) test -race -count=1 -timeout 20m ./...

bench: build
	@bench/run.sh

# Not part of bench: it runs for SOAK_DURATION and fails when providerd's
# RSS, database or descriptors grow, or on any error.
.PHONY: soak
soak: build
	@mkdir -p bench/results
	CP_BIN_DIR=$(BIN) $(GO) run ./bench/soak --out bench/results/soak.md

# -fuzzminimizetime keeps the fuzzer exploring: shrinking each new
# multi-kilobyte tar input for the default 60 s leaves it almost idle.
fuzz:
	$(GO) test -run '^$$' -fuzz=FuzzRead -fuzztime $${FUZZTIME:-60s} -fuzzminimizetime 1x ./provider/archive/

clean:
	rm -rf $(BIN) .run
