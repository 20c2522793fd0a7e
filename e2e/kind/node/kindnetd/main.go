// A stand-in for kindnetd in the locally built kind node image
// (e2e/kind/node/build.sh), under kindnetd's image name so that kind's
// default CNI manifest runs it. A single-node cluster needs no routes to
// other nodes: it writes a ptp + host-local CNI configuration for the pod
// subnet (POD_SUBNET, which kind templates into the manifest; the first one
// when dual-stack) and sleeps until it is stopped.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

const confDir = "/etc/cni/net.d"

const conflist = `{
  "cniVersion": "0.4.0",
  "name": "kindnet",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": %q }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      },
      "mtu": 1500
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
`

func main() {
	subnet := strings.TrimSpace(strings.Split(os.Getenv("POD_SUBNET"), ",")[0])
	if subnet == "" {
		fmt.Fprintln(os.Stderr, "kindnetd stand-in: POD_SUBNET is empty")
		os.Exit(1)
	}
	// Written beside, then renamed: the runtime never reads half a file.
	path := filepath.Join(confDir, "10-kindnet.conflist")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf(conflist, subnet)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "kindnetd stand-in:", err)
		os.Exit(1)
	}
	if err := os.Rename(tmp, path); err != nil {
		fmt.Fprintln(os.Stderr, "kindnetd stand-in:", err)
		os.Exit(1)
	}
	fmt.Printf("kindnetd stand-in: wrote %s for %s; sleeping\n", path, subnet)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
