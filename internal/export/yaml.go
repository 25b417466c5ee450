package export

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"

	"sigs.k8s.io/yaml"
)

// Write writes entries as a YAML stream: for each, its private-metadata Secret (if any), then
// its ClerkUser, each document starting with "---" and comments naming the Clerk user and what
// was left out. Nothing is written when an object cannot be encoded.
func Write(w io.Writer, entries []Entry) error {
	docs := make([][]byte, 0, len(entries))
	for _, e := range entries {
		var b strings.Builder
		if e.Secret != nil {
			y, err := yaml.Marshal(e.Secret)
			if err != nil {
				return fmt.Errorf("encode Secret of %s: %w", e.UserID, err)
			}
			b.WriteString("---\n")
			comment(&b, fmt.Sprintf("Private metadata of Clerk user %s. Keep it out of Git unless encrypted (SOPS, Sealed Secrets).", e.UserID))
			b.Write(y)
		}
		y, err := yaml.Marshal(e.Object)
		if err != nil {
			return fmt.Errorf("encode ClerkUser of %s: %w", e.UserID, err)
		}
		b.WriteString("---\n")
		head := "Clerk user " + e.UserID
		if e.Email != "" {
			head += " <" + e.Email + ">"
		}
		comment(&b, head+", created "+formatTime(e.CreatedAt))
		for _, n := range e.Notes {
			comment(&b, n)
		}
		b.Write(y)
		docs = append(docs, []byte(b.String()))
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, d := range docs {
		if _, err := bw.Write(d); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// comment writes s as YAML comment lines; a line break in s starts a new comment line and
// other characters that are not printable (U+2028 and the like, which YAML may read as line
// breaks) become '?', so that nothing in a user's identifiers can end the comment.
func comment(b *strings.Builder, s string) {
	for line := range strings.SplitSeq(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		line = strings.Map(func(r rune) rune {
			if !unicode.IsPrint(r) {
				return '?'
			}
			return r
		}, line)
		b.WriteString(strings.TrimRight("# "+line, " "))
		b.WriteByte('\n')
	}
}
