// Command pause is the sandbox ("pause") container of Headroom's local node
// (hack/node): PID 1 of every pod sandbox. It holds the pod's namespaces open,
// reaps the zombies of processes that end up reparented to it, and exits when
// the runtime stops the sandbox (SIGTERM or SIGINT). Built static (CGO_ENABLED=0)
// and packaged alone into an OCI image by hack/node/build.sh, because no
// registry is reachable to pull one.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("headroom pause")
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not running as PID 1, so not reaping every orphan")
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: shutting down on %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every child that has exited, without blocking: one SIGCHLD may
// stand for several exits.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
