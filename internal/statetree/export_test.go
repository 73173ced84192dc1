package statetree

// EncodePack is encodePack, for the external tests that forge packs.
var EncodePack = encodePack
