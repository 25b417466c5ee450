package instance

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// CheckNamespace reports whether a ClerkInstance's spec.namespaceSelector selects a namespace
// with the given labels. An empty selector ({}) selects every namespace. A nil selector is an
// error ("spec.namespaceSelector is required"), never "every namespace" nor "none", so that a
// missing field cannot be mistaken for either; so is a selector that
// metav1.LabelSelectorAsSelector refuses (an unknown operator, In without values, a bad label).
func CheckNamespace(sel *metav1.LabelSelector, nsLabels map[string]string) (bool, error) {
	if sel == nil {
		return false, errors.New("spec.namespaceSelector is required")
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, fmt.Errorf("spec.namespaceSelector is invalid: %w", err)
	}
	return s.Matches(labels.Set(nsLabels)), nil
}

// NamespaceNotSelected is the refusal of a ClerkUser in a namespace that instance's
// spec.namespaceSelector does not select (CheckNamespace returned false).
func NamespaceNotSelected(instance, namespace string) *NotAllowedError {
	return &NotAllowedError{
		Instance: instance,
		Rule:     "spec.namespaceSelector",
		Field:    "metadata.namespace",
		Detail: fmt.Sprintf("does not serve namespace %s (spec.namespaceSelector does not select it); "+
			"label the namespace as the ClerkInstance's namespaceSelector requires, or use another ClerkInstance", namespace),
	}
}
