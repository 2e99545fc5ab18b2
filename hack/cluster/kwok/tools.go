//go:build tools

// Package tools pins the kwok programs that hack/cluster/build.sh compiles.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
