// Command mkimage writes the test busybox image as an OCI archive, for
// benchmarks and manual runs: mkimage <archive.tar> <ref> [cmd...].
package main

import (
	"fmt"
	"os"

	"github.com/kantofw/kanto/services/containers/cmtest"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: mkimage <archive.tar> <ref> [cmd...]")
		os.Exit(2)
	}
	img, err := cmtest.BusyboxImage(os.Args[3:]...)
	if err == nil {
		err = img.WriteOCIArchive(os.Args[1], os.Args[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
