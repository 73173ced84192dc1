package wire

import (
	"encoding/json"
	"time"
)

// BasketEntry is the value of one basket key (names.BasketKey): what peel
// Peel's function Function returned, published under Name. Peel repeats the
// key's id, so that a value copied under another peel's key is seen for what
// it is (the masters skip it).
type BasketEntry struct {
	Peel     string          `json:"peel"`
	Name     string          `json:"name"`
	Function string          `json:"function"`
	Value    json.RawMessage `json:"value"`
	// Updated is when the value last changed (a republish of an unchanged
	// value after a store rebuild keeps the time it changed).
	Updated time.Time `json:"updated"`
}

// BasketGetRequest asks the master API's basket.get endpoint for the values
// of Name on every peel Target selects; an empty Name lists the names each
// of them publishes instead (zester basket ls).
type BasketGetRequest struct {
	Target Target `json:"target"`
	Name   string `json:"name,omitempty"`
}

// BasketGetResponse answers a BasketGetRequest. Values maps peel id to the
// value of Name, for the peels that publish it, and Missing lists the
// selected peels that do not; Entries (listing) holds every entry of the
// selected peels, values left out. Skipped counts values in the store that
// could not be used (not a BasketEntry, or of another peel than their
// key's).
type BasketGetResponse struct {
	Name    string                     `json:"name,omitempty"`
	Values  map[string]json.RawMessage `json:"values,omitempty"`
	Missing []string                   `json:"missing,omitempty"`
	Entries []BasketSummary            `json:"entries,omitempty"`
	Skipped int                        `json:"skipped,omitempty"`
}

// BasketSummary is one entry in a listing: who publishes what, from which
// function, how big, since when.
type BasketSummary struct {
	Peel     string    `json:"peel"`
	Name     string    `json:"name"`
	Function string    `json:"function"`
	Bytes    int       `json:"bytes"`
	Updated  time.Time `json:"updated"`
}
