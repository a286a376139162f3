//go:build !unix

package testkit

import "os/exec"

// newGroup does nothing where there are no process groups: the tests that
// start processes run on Linux, and this only lets the packages whose
// tests share testkit build elsewhere (the vet stage checks the edge for
// Windows).
func newGroup(*exec.Cmd) {}

// killGroup kills the process alone.
func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
