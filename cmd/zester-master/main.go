// Command zester-master runs a Zester master.
package main

import (
	"os"

	"github.com/zester-io/zester/master"
)

func main() { os.Exit(master.Main(os.Args[1:], os.Stderr)) }
