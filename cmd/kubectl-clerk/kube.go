package main

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(clerkv1alpha1.AddToScheme(scheme))
}

// kubeClient connects to the cluster of the kubeconfig and returns a client and the
// namespace of the context (default when it names none).
func kubeClient(k kubeFlags) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = userAgent()
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connect to Kubernetes: %w", err)
	}
	return c, ns, nil
}

// kubeError adds a hint to errors that mean the CRDs are not installed.
func kubeError(err error) error {
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("%w: the kubeclerk CRDs (clerk.kubeclerk.dev) are not installed in this cluster; "+
			"check --context, or install kubeclerk", err)
	}
	return err
}
