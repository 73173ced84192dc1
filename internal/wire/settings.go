package wire

// ControlSettingsChanged tells the named peels that their settings-files
// or secrets entry changed: fetch and render again. (A peel may read only
// its own two keys with direct gets, so it cannot watch them.)
const ControlSettingsChanged = "settings.changed"

// SettingsRefreshRequest is the body of the settings.refresh endpoint:
// reload the settings tree and render again the peels Target selects
// (all when nil). Every master answers for the partitions it owns.
type SettingsRefreshRequest struct {
	Target *Target `json:"target,omitempty"`
}

// SettingsRefreshReply is one master's answer.
type SettingsRefreshReply struct {
	Master string `json:"master"`
	Owned  []int  `json:"owned"`
	// Tree is the tree's load error ("" when it loaded); the last good
	// tree is then what rendered.
	Tree string `json:"tree_error,omitempty"`
	// Peels matched the target; Rendered compiled, Written had an entry
	// written (the rest were current), Failed kept their last good render.
	Peels    int      `json:"peels"`
	Rendered int      `json:"rendered"`
	Written  int      `json:"written"`
	Failed   int      `json:"failed"`
	Errors   []string `json:"errors,omitempty"`
}
