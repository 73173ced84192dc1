package render

import (
	"bytes"
	"strings"
	"sync"
)

// DecodeCache shares decoded documents between executions whose output is
// the same text, as a file's output is for most peels (YAML parsing is most
// of a compile's cost). Secrets are no obstacle: the text is compared with
// each execution's nonce taken out of its placeholders, the shared document
// keeps the placeholders, and each caller gets its own secrets bound back in.
// Cached nodes are shared and must not be changed. Safe for concurrent use.
type DecodeCache struct {
	mu       sync.Mutex
	m        map[string]*Node
	bytes    int
	maxBytes int
	// files counts each file's lookups and hits: a file whose texts do not
	// repeat (it prints .id) stops being added once that is clear, so its
	// documents, one per peel, are not kept for nothing.
	files map[string]*cacheUse
}

type cacheUse struct{ lookups, hits int }

// cacheTrial is how many lookups of a file are added regardless; after
// them a file is added only while at least one lookup in cacheHitShare
// hits.
const (
	cacheTrial    = 256
	cacheHitShare = 8
)

// NewDecodeCache returns a cache holding up to maxBytes of keys (the
// rendered texts); once full it stops adding.
func NewDecodeCache(maxBytes int) *DecodeCache {
	return &DecodeCache{m: map[string]*Node{}, maxBytes: maxBytes, files: map[string]*cacheUse{}}
}

const canonPrefix = "ZSN"

// Decode is Decode(file, out, maxNodes) through the cache.
func (c *DecodeCache) Decode(file string, out *Output, maxNodes int) (*Node, error) {
	text := out.text
	if out.nonce != "" && len(out.secrets) > 0 {
		text = bytes.ReplaceAll(text, []byte("ZS"+out.nonce+"N"), []byte(canonPrefix))
	}
	key := file + "\x00" + string(text)
	c.mu.Lock()
	n, ok := c.m[key]
	use := c.files[file]
	if use == nil {
		use = &cacheUse{}
		c.files[file] = use
	}
	use.lookups++
	if ok {
		use.hits++
	}
	keep := use.lookups <= cacheTrial || use.hits*cacheHitShare >= use.lookups
	c.mu.Unlock()
	if ok {
		return out.rebind(n), nil
	}
	// A miss decodes the real output first, for its checks and its
	// errors (masked, positioned); the shared copy is decoded from the
	// canonical text, whose placeholders stay plain strings.
	real, err := Decode(file, out, maxNodes)
	if err != nil || !keep {
		return real, err
	}
	shared := real
	if len(out.secrets) > 0 {
		if shared, err = Decode(file, &Output{text: text}, maxNodes); err != nil {
			return real, nil
		}
	}
	c.mu.Lock()
	if c.bytes+len(key) <= c.maxBytes {
		if _, dup := c.m[key]; !dup {
			c.m[key] = shared
			c.bytes += len(key)
		}
	}
	c.mu.Unlock()
	return real, nil
}

// rebind gives a shared node this output's secrets: the scalars holding
// canonical placeholders are copied with the secrets resolved; the rest is
// shared.
func (o *Output) rebind(n *Node) *Node {
	if len(o.secrets) == 0 || n == nil {
		return n
	}
	switch n.Kind {
	case Scalar:
		s, ok := n.Value.(string)
		if !ok || !strings.Contains(s, canonPrefix) {
			return n
		}
		c := *n
		canon := &Output{nonce: "", secrets: o.secrets}
		v, whole := canon.substituteWith(s, canonPrefix, func(i int) string { return o.secrets[i] })
		if !whole {
			v = Masked
		}
		c.Value = NewSecret(v)
		return &c
	case Map:
		var pairs []Pair
		for i, p := range n.Pairs {
			v := o.rebind(p.Value)
			if v != p.Value && pairs == nil {
				pairs = append(make([]Pair, 0, len(n.Pairs)), n.Pairs[:i]...)
			}
			if pairs != nil {
				p.Value = v
				pairs = append(pairs, p)
			}
		}
		if pairs == nil {
			return n
		}
		c := *n
		c.Pairs = pairs
		return &c
	case List:
		var items []*Node
		for i, it := range n.Items {
			v := o.rebind(it)
			if v != it && items == nil {
				items = append(make([]*Node, 0, len(n.Items)), n.Items[:i]...)
			}
			if items != nil {
				items = append(items, v)
			}
		}
		if items == nil {
			return n
		}
		c := *n
		c.Items = items
		return &c
	}
	return n
}

// Len is the number of documents held.
func (c *DecodeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
