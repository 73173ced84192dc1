package factcodec

// DictV1ForTest is the newest dictionary (benchmarks of other levels).
func DictV1ForTest() []byte { return dictV1 }
