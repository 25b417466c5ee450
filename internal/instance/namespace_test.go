package instance

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCheckNamespace(t *testing.T) {
	acme := map[string]string{"clerk.kubeclerk.dev/instance": "acme-prod", "team": "support"}
	other := map[string]string{"clerk.kubeclerk.dev/instance": "other", "team": "billing"}
	expr := func(key string, op metav1.LabelSelectorOperator, values ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	for _, tc := range []struct {
		name    string
		sel     *metav1.LabelSelector
		labels  map[string]string
		want    bool
		wantErr string
	}{
		{name: "nil selector", sel: nil, labels: acme, wantErr: "spec.namespaceSelector is required"},
		{name: "nil selector, no labels", sel: nil, wantErr: "spec.namespaceSelector is required"},
		{name: "empty selector selects a labelled namespace", sel: &metav1.LabelSelector{}, labels: acme, want: true},
		{name: "empty selector selects an unlabelled namespace", sel: &metav1.LabelSelector{}, want: true},
		{name: "empty matchLabels selects every namespace", sel: &metav1.LabelSelector{MatchLabels: map[string]string{}}, want: true},
		{name: "matchLabels match", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"clerk.kubeclerk.dev/instance": "acme-prod"}}, labels: acme, want: true},
		{name: "matchLabels other value", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"clerk.kubeclerk.dev/instance": "acme-prod"}}, labels: other},
		{name: "matchLabels no labels", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"clerk.kubeclerk.dev/instance": "acme-prod"}}},
		{name: "matchLabels all must match", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"clerk.kubeclerk.dev/instance": "acme-prod", "team": "billing"}}, labels: acme},
		{name: "In", sel: expr("team", metav1.LabelSelectorOpIn, "support", "sales"), labels: acme, want: true},
		{name: "In, not listed", sel: expr("team", metav1.LabelSelectorOpIn, "support", "sales"), labels: other},
		{name: "NotIn", sel: expr("team", metav1.LabelSelectorOpNotIn, "support"), labels: other, want: true},
		{name: "NotIn, listed", sel: expr("team", metav1.LabelSelectorOpNotIn, "support"), labels: acme},
		{name: "NotIn, label absent", sel: expr("team", metav1.LabelSelectorOpNotIn, "support"), want: true},
		{name: "Exists", sel: expr("team", metav1.LabelSelectorOpExists), labels: other, want: true},
		{name: "Exists, absent", sel: expr("team", metav1.LabelSelectorOpExists)},
		{name: "DoesNotExist", sel: expr("team", metav1.LabelSelectorOpDoesNotExist), want: true},
		{name: "DoesNotExist, present", sel: expr("team", metav1.LabelSelectorOpDoesNotExist), labels: acme},
		{name: "unknown operator", sel: expr("team", "Matches", "x"), labels: acme, wantErr: "spec.namespaceSelector is invalid"},
		{name: "In without values", sel: expr("team", metav1.LabelSelectorOpIn), labels: acme, wantErr: "spec.namespaceSelector is invalid"},
		{name: "Exists with values", sel: expr("team", metav1.LabelSelectorOpExists, "x"), labels: acme, wantErr: "spec.namespaceSelector is invalid"},
		{name: "bad label key", sel: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key": "x"}}, labels: acme, wantErr: "spec.namespaceSelector is invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckNamespace(tc.sel, tc.labels)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("CheckNamespace = %v, %v; want an error containing %q", got, err, tc.wantErr)
				}
				if got {
					t.Error("CheckNamespace selected the namespace along with an error")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CheckNamespace = %v, %v; want %v, nil", got, err, tc.want)
			}
		})
	}
}

func TestNamespaceNotSelected(t *testing.T) {
	err := NamespaceNotSelected("acme-prod", "support")
	want := "ClerkInstance acme-prod does not serve namespace support (spec.namespaceSelector does not select it); " +
		"label the namespace as the ClerkInstance's namespaceSelector requires, or use another ClerkInstance"
	if err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
	var na *NotAllowedError
	if !errors.As(error(err), &na) || na.Rule != "spec.namespaceSelector" {
		t.Errorf("not a NotAllowedError for spec.namespaceSelector: %#v", err)
	}
}
