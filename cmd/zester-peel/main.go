// Command zester-peel runs the Zester agent.
package main

import (
	"os"

	"github.com/zester-io/zester/peel"
)

func main() { os.Exit(peel.Main(os.Args[1:], os.Stderr)) }
