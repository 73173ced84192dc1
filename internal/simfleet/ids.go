package simfleet

import (
	"strconv"
	"strings"
)

// PeelID is the id of simulated peel i: sim-000123.dc1.example.com. The dots
// are on purpose (ids are FQDNs; subjects must escape them).
func PeelID(i int) string {
	return "sim-" + pad6(i) + ".dc" + strconv.Itoa(1+i%3) + ".example.com"
}

func pad6(i int) string {
	s := strconv.Itoa(i)
	if len(s) < 6 {
		s = strings.Repeat("0", 6-len(s)) + s
	}
	return s
}

// PeelIndex parses the index back out of a simulated peel's id (sim-<digits>.…,
// PeelID's and any FleetConfig.ID of that shape); -1 when it is not one.
func PeelIndex(id string) int {
	rest, ok := strings.CutPrefix(id, "sim-")
	if !ok {
		return -1
	}
	n := 0
	digits := 0
	for i := 0; i < len(rest) && rest[i] != '.'; i++ {
		c := rest[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
		digits++
	}
	if digits == 0 {
		return -1
	}
	return n
}
