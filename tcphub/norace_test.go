//go:build !race

package tcphub_test

// raceEnabled reports a -race build, whose instrumentation changes what
// memory measurements see.
const raceEnabled = false
