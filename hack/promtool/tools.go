//go:build tools

// Package tools pins the promtool program that hack/promtool/build.sh compiles.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
