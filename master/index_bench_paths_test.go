package master

// What the benchmarks set of index.fact_paths (apart, so that the same
// benchmark runs on a tree without the key).

func benchDefaultPaths() []string { return DefaultIndexFactPaths }

func benchSetPaths(m *Master, paths []string) { m.cfg.Index.FactPaths = paths }
