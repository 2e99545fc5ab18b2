//go:build tools

// Package tools pins the kubelet that hack/node/build.sh compiles.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubelet"
)
