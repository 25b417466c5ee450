#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd, kubectl) from Go modules and stores the
# binaries where setup-envtest keeps its own, so every clone on this machine and
# `setup-envtest use --installed-only` reuse them. Prints the directory on the last line of stdout.
#
#   K8S_VERSION   Kubernetes version (default 1.37.2)
#   ENVTEST_DIR   override the destination directory
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
os="$(go env GOOS)"
arch="$(go env GOARCH)"
data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
dest="${ENVTEST_DIR:-$data_home/kubebuilder-envtest/k8s/${K8S_VERSION}-${os}-${arch}}"

# An explicit KUBEBUILDER_ASSETS with all three binaries wins: nothing to build.
if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" && -x "$KUBEBUILDER_ASSETS/kubectl" ]]; then
	echo "$KUBEBUILDER_ASSETS"
	exit 0
fi

if [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" && -x "$dest/kubectl" ]]; then
	echo "$dest"
	exit 0
fi

echo "envtest: building kube-apiserver, kubectl (k8s.io/kubernetes v${K8S_VERSION}) and etcd (v3.6.16) from source into $dest" >&2
echo "envtest: the first build takes about 12 minutes on 2 cores; later runs reuse it" >&2
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

ldflags="-s -w"
kver="-X k8s.io/component-base/version.gitVersion=v${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
(
	cd "$here/kube"
	echo "envtest: go build kube-apiserver" >&2
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags $kver" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
	echo "envtest: go build kubectl" >&2
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags $kver" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
)
(
	cd "$here/etcd"
	echo "envtest: go build etcd" >&2
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/etcd" .
)
mv "$tmp/kube-apiserver" "$tmp/kubectl" "$tmp/etcd" "$dest/"
echo "envtest: done" >&2
echo "$dest"
