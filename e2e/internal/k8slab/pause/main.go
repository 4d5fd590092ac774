// Command pause sleeps until it is signalled (SIGINT, SIGTERM) and then exits
// 0. Built static, it is the sandbox ("pause") image of the Kubernetes lab
// and the payload of its smoke test, so no image is ever pulled.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
}
