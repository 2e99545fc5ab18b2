//go:build tools

// Package tools pins the kubeconform program that hack/kubeconform/build.sh compiles.
package tools

import _ "github.com/yannh/kubeconform/cmd/kubeconform"
