package peelproto

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/zester-io/zester/internal/wire"
)

// A beat is one small JSON object, {"i":"<instance>","bye":true,"iv":"10s","c":1}
// (wire.Beat). A million peels send tens of thousands a second and every
// master decodes each one it owns, so both ends have a fast path for exactly
// the bytes encoding/json writes for an instance of plain characters (the
// hex nonce NewInstance makes): appendBeat writes them without reflection,
// and decodeBeat reads only that form, handing anything else (another field
// order, spaces, escapes, unknown fields) to encoding/json. The two paths
// agree byte for byte and value for value (TestBeatCodec_SameAsJSON,
// FuzzDecodeBeat).

// plainBeatChar tells the bytes json.Marshal writes as they are inside a
// string and that need no escaping (a subset: letters, digits, . _ - : ~).
func plainBeatChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
		c == '.' || c == '_' || c == '-' || c == ':' || c == '~'
}

func plainBeatString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainBeatChar(s[i]) {
			return false
		}
	}
	return true
}

// encodeBeat is json.Marshal(b), without reflection for a plain instance.
func encodeBeat(b wire.Beat) []byte {
	if !plainBeatString(b.Instance) {
		data, _ := json.Marshal(b)
		return data
	}
	out := make([]byte, 0, 48+len(b.Instance))
	out = append(out, `{"i":"`...)
	out = append(out, b.Instance...)
	out = append(out, '"')
	if b.Bye {
		out = append(out, `,"bye":true`...)
	}
	if b.Interval != 0 {
		out = append(out, `,"iv":"`...)
		out = append(out, time.Duration(b.Interval).String()...)
		out = append(out, '"')
	}
	if b.Conn != 0 {
		out = append(out, `,"c":`...)
		out = strconv.AppendUint(out, uint64(b.Conn), 10)
	}
	return append(out, '}')
}

// decodeBeat is json.Unmarshal(data, &b), reading the form encodeBeat writes
// directly and anything else with encoding/json.
func decodeBeat(data []byte, b *wire.Beat) error {
	if fastDecodeBeat(data, b) {
		return nil
	}
	*b = wire.Beat{}
	return json.Unmarshal(data, b)
}

// fastDecodeBeat reads exactly {"i":"<plain>"[,"bye":true][,"iv":"<dur>"][,"c":<n>]}
// into b and tells whether it did; false leaves the input to encoding/json.
func fastDecodeBeat(data []byte, b *wire.Beat) bool {
	const head = `{"i":"`
	if len(data) < len(head)+2 || string(data[:len(head)]) != head {
		return false
	}
	i := len(head)
	start := i
	for i < len(data) && plainBeatChar(data[i]) {
		i++
	}
	if i >= len(data) || data[i] != '"' {
		return false
	}
	inst := string(data[start:i])
	i++
	bye := false
	const byeField = `,"bye":true`
	if len(data)-i >= len(byeField) && string(data[i:i+len(byeField)]) == byeField {
		bye = true
		i += len(byeField)
	}
	var iv time.Duration
	const ivField = `,"iv":"`
	if len(data)-i >= len(ivField) && string(data[i:i+len(ivField)]) == ivField {
		i += len(ivField)
		ds := i
		for i < len(data) && data[i] != '"' && data[i] != '\\' {
			i++
		}
		if i >= len(data) || data[i] != '"' {
			return false
		}
		d, err := time.ParseDuration(string(data[ds:i]))
		if err != nil {
			return false // encoding/json reports it
		}
		iv = d
		i++
	}
	var conn uint64
	const connField = `,"c":`
	if len(data)-i >= len(connField) && string(data[i:i+len(connField)]) == connField {
		i += len(connField)
		ds := i
		for i < len(data) && data[i] >= '0' && data[i] <= '9' {
			i++
		}
		// JSON has no leading zeros; a number past uint32 is
		// encoding/json's error to word.
		if i == ds || data[ds] == '0' && i-ds > 1 {
			return false
		}
		n, err := strconv.ParseUint(string(data[ds:i]), 10, 32)
		if err != nil {
			return false
		}
		conn = n
	}
	if i != len(data)-1 || data[i] != '}' {
		return false
	}
	*b = wire.Beat{Instance: inst, Bye: bye, Interval: wire.Duration(iv), Conn: uint32(conn)}
	return true
}
