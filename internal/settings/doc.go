// Package settings compiles a settings tree (Salt's pillar) for one peel:
// top.zy picks the settings files whose targets match the peel, each file is
// rendered by internal/render with the peel's id and facts, decoded as YAML
// and deep-merged in order. Secrets are tokens sealed to the masters' curve
// key (zester secrets encrypt); they are opened only in memory while
// rendering and come out as render.Secret values, masked wherever they are
// printed. docs/settings.md is the operator's guide.
//
// The merge rule (Salt's "recurse" strategy with pillar_merge_lists off):
// maps merge key by key, recursively; a list, a scalar or a map over a
// non-map replaces what earlier files set; a list tagged !append is
// appended to the earlier list; a map tagged !replace replaces the earlier
// map instead of merging into it; null is a value (it replaces).
//
// Order: top.zy's entries in document order, each entry's files in list
// order, a file named again keeping its first place. {{ setting "a:b" }} in
// a file sees the merge of the files before it, so lookups cannot form a
// cycle.
//
// A master Loads a tree once (every template parsed, static files decoded
// once) and compiles it per peel, concurrently. Load and Compile report and
// return; they never log.
package settings
