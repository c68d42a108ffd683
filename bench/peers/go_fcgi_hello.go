// The Go net/http/fcgi peer of bench/run.sh: one handler, served on every address given
// (host:port, or unix:PATH).
package main

import (
	"log"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"strings"
)

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("Hello, World!\n"))
}

func main() {
	for _, addr := range os.Args[1:] {
		network := "tcp"
		if strings.HasPrefix(addr, "unix:") {
			network, addr = "unix", strings.TrimPrefix(addr, "unix:")
			os.Remove(addr)
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			log.Fatal(err)
		}
		if network == "unix" {
			os.Chmod(addr, 0666)
		}
		go func(l net.Listener) { log.Fatal(fcgi.Serve(l, http.HandlerFunc(hello))) }(l)
	}
	select {}
}
