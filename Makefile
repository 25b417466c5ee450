# The version built: the Git tag when HEAD has one, else dev. It goes into --version, the
# User-Agent sent to Clerk, the kubeclerk_build_info metric and the image tag.
VERSION ?= $(shell git describe --tags --exact-match 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS ?= -X github.com/kubeclerk/kubeclerk/internal/version.Version=$(VERSION) -X github.com/kubeclerk/kubeclerk/internal/version.Commit=$(COMMIT)
# Image URL to use all building/pushing image targets
IMG ?= ghcr.io/kubeclerk/kubeclerk:$(if $(filter dev,$(VERSION)),latest,$(VERSION))

# Get the currently used golang install path (in GOPATH/bin, unless GOBIN is set)
ifeq (,$(shell go env GOBIN))
GOBIN=$(shell go env GOPATH)/bin
else
GOBIN=$(shell go env GOBIN)
endif

# CONTAINER_TOOL defines the container tool to be used for building images.
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate ClusterRole and CustomResourceDefinition objects.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	cp config/crd/bases/*.yaml charts/kubeclerk/crds/

.PHONY: generate
generate: controller-gen ## Generate code containing DeepCopy, DeepCopyInto, and DeepCopyObject method implementations.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: test
test: manifests generate fmt vet envtest-assets helm kustomize ## Run all tests (unit and envtest) with the race detector.
	KUBEBUILDER_ASSETS="$$(bash hack/envtest/build.sh | tail -n 1)" go test -race -timeout 20m ./... -coverprofile cover.out

.PHONY: verify
verify: manifests generate fmt ## Regenerate everything, tidy modules, and fail if the tree changed.
	go mod tidy
	@if [ -n "$$(git status --porcelain -- . ':!cover.out')" ]; then \
		echo "verify: generated files, formatting or go.mod/go.sum are stale; run 'make manifests generate fmt' and 'go mod tidy' and commit:"; \
		git status --porcelain -- . ':!cover.out'; git --no-pager diff --stat; exit 1; \
	fi

.PHONY: lint
lint: golangci-lint ## Run golangci-lint linter
	"$(GOLANGCI_LINT)" run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint linter and perform fixes
	"$(GOLANGCI_LINT)" run --fix

.PHONY: lint-config
lint-config: golangci-lint ## Verify golangci-lint linter configuration
	"$(GOLANGCI_LINT)" config verify

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager, the fake Clerk API and the kubectl plugin (bin/).
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/manager ./cmd/manager
	go build -trimpath -o bin/fakeclerk ./cmd/fakeclerk
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubectl-clerk ./cmd/kubectl-clerk

.PHONY: run
run: manifests generate fmt vet ## Run the manager from your host against the cluster in ~/.kube/config (needs CLERK_SECRET_KEY).
	go run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build docker image with the manager.
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push docker image with the manager.
	$(CONTAINER_TOOL) push ${IMG}

.PHONY: build-installer
build-installer: manifests generate kustomize ## Generate a consolidated YAML with CRDs and deployment.
	rm -rf dist/.config && mkdir -p dist && cp -r config dist/.config
	cd dist/.config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	"$(KUSTOMIZE)" build dist/.config/default > dist/install.yaml
	rm -rf dist/.config
	@echo "dist/install.yaml: kubeclerk $(VERSION), image ${IMG}"

##@ Benchmark

## make bench: N ClerkUsers, each needing one Clerk write, converged by bin/manager against
## bin/fakeclerk with Clerk's rate limit, with batched and with per-object observation.
N ?= 1000
LATENCY ?= 100ms
## live: Clerk's production limit (1000 requests per 10 s); test: development (100 per 10 s).
KEY_TYPE ?= live
## 0: the shortest at which per-object observation stays within 2/3 of the budget, at least 30s.
SYNC_PERIOD ?= 0
BENCH_ARGS ?=

.PHONY: bench
bench: build envtest-assets ## Benchmark N ClerkUsers (make bench N=10000 LATENCY=100ms); table, bin/bench/result.json, bin/bench/converge.svg.
	KUBEBUILDER_ASSETS="$$(bash hack/envtest/build.sh | tail -n 1)" go run ./hack/bench \
		-n $(N) -latency $(LATENCY) -key-type $(KEY_TYPE) -sync-period $(SYNC_PERIOD) $(BENCH_ARGS)

##@ Chaos

## make chaos: CHAOS_N ClerkUsers, two manager replicas with leader election, one fault per phase
## (throttle, errors, lost, outage, failover, restarts, apiserver, all); exits non-zero when an invariant fails.
CHAOS_N ?= 500
CHAOS_ARGS ?=
CHAOS_RUN = KUBEBUILDER_ASSETS="$$(K8S_VERSION=$(ENVTEST_K8S_VERSION) bash hack/envtest/build.sh | tail -n 1)" go run ./hack/chaos

.PHONY: chaos
chaos: build envtest-assets ## Chaos test: every fault phase with CHAOS_N ClerkUsers (about 8 min on 2 cores); table, bin/chaos/result.json.
	$(CHAOS_RUN) -n $(CHAOS_N) $(CHAOS_ARGS)

.PHONY: chaos-short
chaos-short: build envtest-assets ## Chaos test for CI: 80 ClerkUsers, the all phase only (under 5 min).
	$(CHAOS_RUN) -n 80 -phases all $(CHAOS_ARGS)

##@ Demo

## Extra flags for the demo program (go run ./hack/demo --help), e.g. DEMO_FLAGS=--keep.
DEMO_FLAGS ?=
## Listen address of the demo's fake Clerk API; empty: 127.0.0.1:8089, or a free port when that one is taken.
DEMO_CLERK_ADDR ?=
DEMO_RUN = go build -o bin/kubeclerk-demo ./hack/demo && \
	KUBEBUILDER_ASSETS="$$(K8S_VERSION=$(ENVTEST_K8S_VERSION) bash hack/envtest/build.sh | tail -n 1)" \
	bin/kubeclerk-demo $(if $(DEMO_CLERK_ADDR),--clerk-addr $(DEMO_CLERK_ADDR))

.PHONY: demo
demo: build envtest-assets ## Run kubeclerk on a local control plane against the fake Clerk API with config/samples; Ctrl-C stops it.
	@$(DEMO_RUN) $(DEMO_FLAGS)

.PHONY: demo-check
demo-check: build envtest-assets ## The demo, non-interactive: exit 0 once every sample is Ready, non-zero after 180s.
	@$(DEMO_RUN) --check --timeout 180s $(DEMO_FLAGS)

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install CRDs into the K8s cluster specified in ~/.kube/config.
	"$(KUSTOMIZE)" build config/crd | "$(KUBECTL)" apply -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall CRDs from the K8s cluster specified in ~/.kube/config.
	"$(KUSTOMIZE)" build config/crd | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy controller to the K8s cluster specified in ~/.kube/config.
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=${IMG}
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" apply -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy controller from the K8s cluster specified in ~/.kube/config.
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Tool Binaries
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo "$$(bash hack/envtest/build.sh | tail -n 1)/kubectl")
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
HELM ?= $(LOCALBIN)/helm
GOLANGCI_LINT = $(LOCALBIN)/golangci-lint

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
## Kubernetes version of the envtest control plane (kube-apiserver, kubectl), built from source.
ENVTEST_K8S_VERSION ?= 1.37.2

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd and kubectl for envtest from source (first time ~12 min), or reuse them.
	@K8S_VERSION=$(ENVTEST_K8S_VERSION) bash hack/envtest/build.sh >/dev/null

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: helm
helm: $(HELM) ## Build helm locally if necessary (go install, no prebuilt binary).
$(HELM): $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Download golangci-lint locally if necessary.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef
