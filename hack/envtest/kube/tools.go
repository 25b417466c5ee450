//go:build tools

// Package tools pins the Kubernetes commands that envtest runs, so that
// `go build` of this module produces kube-apiserver and kubectl from source.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
