package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultGCPercent is the manager's GOGC unless the environment sets one: the heap may grow by
// half its live size between collections instead of doubling, which keeps the resident memory
// of a manager of 10,000 users near its live heap for a little more GC work (it is I/O bound).
const defaultGCPercent = 50

// memoryLimitShare is the share of the container's memory limit the Go runtime is asked to stay
// under (GOMEMLIMIT), unless the environment sets one: it then collects harder as it nears the
// limit instead of being OOM-killed.
const memoryLimitShare = 0.9

// cgroupMemoryFiles hold the container's memory limit: cgroup v2, then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// tuneMemory applies defaultGCPercent and a memory limit derived from the cgroup's, each unless
// GOGC or GOMEMLIMIT is set, and returns the limit set (0: none).
func tuneMemory() int64 {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit := cgroupMemoryLimit(cgroupMemoryFiles)
	if limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// cgroupMemoryLimit reads the first of files that holds a memory limit in bytes; 0 when none
// does ("max", absent, or the v1 "unlimited" value).
func cgroupMemoryLimit(files []string) int64 {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<60 {
			return 0
		}
		return v
	}
	return 0
}
