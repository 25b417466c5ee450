package metricsauth

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestAgainstKubeAPIServer runs Filter against a real kube-apiserver (envtest): a service
// account's token is reviewed by it, and RBAC decides what the account may do.
func TestAgainstKubeAPIServer(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Skip("KUBEBUILDER_ASSETS is not set: run 'make test', which builds or finds kube-apiserver and etcd")
	}
	g := NewWithT(t)
	ctx := t.Context()

	testEnv := &envtest.Environment{}
	cfg, err := testEnv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if err := testEnv.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	cs, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	httpClient, err := rest.HTTPClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())

	// serve sends one request through a new filter (so that no cached decision hides a change).
	serve := func(method, token string) int {
		filter, err := Filter(cfg, httpClient)
		g.Expect(err).NotTo(HaveOccurred())
		h, err := filter(logr.Discard(), http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "metrics")
		}))
		g.Expect(err).NotTo(HaveOccurred())
		req := httptest.NewRequestWithContext(ctx, method, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}

	g.Expect(serve(http.MethodGet, "not-a-token")).To(Equal(http.StatusUnauthorized))

	const ns = "monitoring"
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "prometheus",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	token := tr.Status.Token
	g.Expect(token).NotTo(BeEmpty())

	// Authenticated, but not allowed anything yet.
	g.Expect(serve(http.MethodGet, token)).To(Equal(http.StatusForbidden))

	_, err = cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: ns}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	// The API server's RBAC authorizer learns of the binding through its informers.
	g.Eventually(func() int { return serve(http.MethodGet, token) }).
		WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).
		Should(Equal(http.StatusOK))
	g.Expect(serve(http.MethodPost, token)).To(Equal(http.StatusForbidden), "only get is granted")
	g.Expect(serve(http.MethodGet, "not-a-token")).To(Equal(http.StatusUnauthorized))

	// A token of a deleted service account is no longer accepted.
	g.Expect(cs.CoreV1().ServiceAccounts(ns).Delete(ctx, "prometheus", metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(func() int { return serve(http.MethodGet, token) }).
		WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).
		Should(Equal(http.StatusUnauthorized))
}
