module headroom.dev/hack/node/pause

go 1.24.0
