// The pod sandbox's "pause" process: holds the pod's namespaces open and exits on
// SIGINT or SIGTERM, like registry.k8s.io/pause (which cannot be pulled here).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
