package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	old, oldCommit := Version, Commit
	t.Cleanup(func() { Version, Commit = old, oldCommit })
	Version, Commit = "v1.2.3", "abc123"
	got := String("kubeclerk")
	for _, want := range []string{"kubeclerk v1.2.3", "commit abc123", runtime.Version()} {
		if !strings.Contains(got, want) {
			t.Errorf("String() = %q, want it to contain %q", got, want)
		}
	}
	Commit = ""
	if CommitOrVCS() == "" {
		t.Error("CommitOrVCS() is empty without ldflags")
	}
}
