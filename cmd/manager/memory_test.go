package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name  string
		files []string
		want  int64
	}{
		{"v2 limit", []string{write("v2", "268435456\n")}, 268435456},
		{"v2 max", []string{write("v2max", "max\n"), write("v1", "1000")}, 0},
		{"v1 after missing v2", []string{filepath.Join(dir, "absent"), write("v1b", "134217728")}, 134217728},
		{"v1 unlimited", []string{write("v1u", "9223372036854771712")}, 0},
		{"none", []string{filepath.Join(dir, "absent")}, 0},
	} {
		if got := cgroupMemoryLimit(tc.files); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
