// Package version is the kubeclerk build's version, set at build time with
//
//	-ldflags "-X github.com/kubeclerk/kubeclerk/internal/version.Version=v0.3.0 -X github.com/kubeclerk/kubeclerk/internal/version.Commit=<sha>"
//
// (make build and the Dockerfile do it). It goes into --version, the User-Agent sent to Clerk
// and the kubeclerk_build_info metric.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

var (
	// Version is the release, e.g. v0.3.0; "dev" for a build without ldflags.
	Version = "dev"
	// Commit is the Git commit built; from the Go build info when not set by ldflags.
	Commit = ""
)

// CommitOrVCS returns Commit, else the VCS revision Go recorded in the binary, else "unknown".
func CommitOrVCS() string {
	if Commit != "" {
		return Commit
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return "unknown"
}

// String is the one-line version report of --version.
func String(program string) string {
	return fmt.Sprintf("%s %s (commit %s, %s, %s/%s)", program, Version, CommitOrVCS(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
