package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecretKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file, env, want, wantErr string
	}{
		{name: "file wins, trailing newline trimmed", file: write("k", "sk_live_file\n"), env: "sk_test_env", want: "sk_live_file"},
		{name: "env", env: " sk_test_env ", want: "sk_test_env"},
		{name: "nothing: no key of its own", want: ""},
		{name: "empty file", file: write("empty", "\n"), wantErr: "is empty"},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "read --clerk-secret-key-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CLERK_SECRET_KEY", tc.env)
			got, err := readSecretKey(tc.file)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("readSecretKey = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDefaultWorkers(t *testing.T) {
	for _, tc := range []struct {
		perSecond float64
		want      int
	}{{5, 2}, {50, 20}, {1000, 100}, {0.5, 2}} {
		if got := defaultWorkers(tc.perSecond); got != tc.want {
			t.Errorf("defaultWorkers(%v) = %d, want %d", tc.perSecond, got, tc.want)
		}
	}
}
