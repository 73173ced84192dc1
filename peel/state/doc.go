// Package state is the state engine: it loads a tree of Salt-shaped .sls
// files, builds the requisite graph, and runs the states through the
// modules' functions (peel/state/mod is the contract; one small package per
// module family: file, cmd, pkg, service, user).
//
// # Stages
//
// Every stage is a separate step with its own errors, so nothing runs
// before the whole plan is known to be sound:
//
//  1. Load (loader.go): each .sls file is rendered with internal/render
//     (the engine of settings: .id, .facts, setting, basket, secret), then
//     decoded as YAML with positions; include is followed, extend applied,
//     names expanded. The result is a list of Chunks (Salt's "low
//     chunks"), one per state function call, in declaration order.
//  2. Check: every module.function is in the mod.Table and takes the
//     arguments given; every requisite names a state that exists.
//  3. Order (graph.go): requisites are edges; order: (first, numbers,
//     last) and declaration order break ties. A cycle is refused naming
//     every state on it, with file and line.
//  4. Run (runner.go): one state at a time, in that order, with Salt's
//     requisite semantics; test mode asks every module what it would
//     change and changes nothing.
//
// Errors of stages 1–3 are *Error (file:line:col: message), joined with
// errors.Join when there are several, so an operator fixes a tree in one
// pass rather than one error per run.
//
// # Return
//
// A run returns Return, a map from mod.RunKey ("file_|-motd_|-/etc/motd_|-managed")
// to mod.Run: Salt's JSON shape, so tooling written for Salt reads it.
package state
