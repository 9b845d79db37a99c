// Command etcd is etcd's server built from go.etcd.io/etcd/server/v3.
//
// etcd's own go.mod carries replace lines, so `go install` of it is refused;
// this wrapper module pins the release and calls the same entry point as the
// upstream binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
