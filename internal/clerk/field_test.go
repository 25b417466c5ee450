package clerk_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
)

func TestField(t *testing.T) {
	type body struct {
		S clerk.Field[string]         `json:"s,omitzero"`
		N clerk.Field[int]            `json:"n,omitzero"`
		M clerk.Field[map[string]any] `json:"m,omitzero"`
	}
	tests := []struct {
		name string
		in   body
		json string
	}{
		{"all absent", body{}, `{}`},
		{"null", body{S: clerk.Null[string](), N: clerk.Null[int]()}, `{"s":null,"n":null}`},
		{"values including zero values", body{S: clerk.Set(""), N: clerk.Set(0), M: clerk.Set(map[string]any{})}, `{"s":"","n":0,"m":{}}`},
		{"value", body{S: clerk.Set("x"), M: clerk.Set(map[string]any{"a": nil})}, `{"s":"x","m":{"a":null}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.json {
				t.Errorf("Marshal = %s, want %s", got, tt.json)
			}
			var back body
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			opt := cmp.Comparer(func(a, b clerk.Field[string]) bool { return fieldEq(a, b) })
			optN := cmp.Comparer(func(a, b clerk.Field[int]) bool { return fieldEq(a, b) })
			optM := cmp.Comparer(func(a, b clerk.Field[map[string]any]) bool {
				av, aok := a.Value()
				bv, bok := b.Value()
				return a.IsZero() == b.IsZero() && a.IsNull() == b.IsNull() && aok == bok && cmp.Equal(av, bv)
			})
			if diff := cmp.Diff(tt.in, back, opt, optN, optM); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func fieldEq[T comparable](a, b clerk.Field[T]) bool {
	av, aok := a.Value()
	bv, bok := b.Value()
	return a.IsZero() == b.IsZero() && a.IsNull() == b.IsNull() && aok == bok && av == bv
}

func TestFieldStates(t *testing.T) {
	tests := []struct {
		name            string
		f               clerk.Field[string]
		zero, null, has bool
		value           string
		marshalled      string
	}{
		{"absent", clerk.Field[string]{}, true, false, false, "", "null"},
		{"null", clerk.Null[string](), false, true, false, "", "null"},
		{"empty string", clerk.Set(""), false, false, true, "", `""`},
		{"value", clerk.Set("v"), false, false, true, "v", `"v"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, has := tt.f.Value()
			if tt.f.IsZero() != tt.zero || tt.f.IsNull() != tt.null || has != tt.has || v != tt.value {
				t.Errorf("IsZero=%v IsNull=%v Value=(%q,%v); want %v %v (%q,%v)",
					tt.f.IsZero(), tt.f.IsNull(), v, has, tt.zero, tt.null, tt.value, tt.has)
			}
			b, err := json.Marshal(tt.f)
			if err != nil || string(b) != tt.marshalled {
				t.Errorf("Marshal = %s, %v; want %s", b, err, tt.marshalled)
			}
		})
	}
}

func TestUpdateUserParamsIsEmpty(t *testing.T) {
	tests := []struct {
		name string
		p    clerk.UpdateUserParams
		want bool
	}{
		{"zero", clerk.UpdateUserParams{}, true},
		{"external id null", clerk.UpdateUserParams{ExternalID: clerk.Null[string]()}, false},
		{"username", clerk.UpdateUserParams{Username: clerk.Set("u")}, false},
		{"first name", clerk.UpdateUserParams{FirstName: clerk.Set("")}, false},
		{"last name", clerk.UpdateUserParams{LastName: clerk.Null[string]()}, false},
		{"primary email", clerk.UpdateUserParams{PrimaryEmailAddressID: clerk.Set("idn_1")}, false},
		{"totp", clerk.UpdateUserParams{TOTPSecret: clerk.Set("JBSWY3DPEHPK3PXP")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.IsEmpty(); got != tt.want {
				t.Errorf("IsEmpty() = %v, want %v", got, tt.want)
			}
		})
	}
}
