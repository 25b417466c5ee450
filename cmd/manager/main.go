/*
Copyright 2026 The kubeclerk Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command manager runs the kubeclerk controller manager: it reconciles ClerkUser objects
// against a Clerk instance's Backend API.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	clerkv1alpha1 "github.com/kubeclerk/kubeclerk/api/v1alpha1"
	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/controller"
	"github.com/kubeclerk/kubeclerk/internal/instance"
	"github.com/kubeclerk/kubeclerk/internal/metrics"
	"github.com/kubeclerk/kubeclerk/internal/metricsauth"
	"github.com/kubeclerk/kubeclerk/internal/observe"
	"github.com/kubeclerk/kubeclerk/internal/recorder"
	"github.com/kubeclerk/kubeclerk/internal/version"
	// +kubebuilder:scaffold:imports
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))

	utilruntime.Must(clerkv1alpha1.AddToScheme(scheme))
	// +kubebuilder:scaffold:scheme
}

func main() {
	var metricsAddr string
	var metricsCertPath, metricsCertName, metricsCertKey string
	var enableLeaderElection bool
	var probeAddr string
	var secureMetrics bool
	var enableHTTP2 bool
	var tlsOpts []func(*tls.Config)
	var clerkKeyFile, clerkAPIURL, clusterResourceNamespace string
	var syncPeriod, fullReadInterval time.Duration
	var clerkRPS float64
	var clerkBurst, maxConcurrent int
	var webhookAddr, webhookSecretFile string
	flag.StringVar(&webhookAddr, "webhook-bind-address", "",
		"Serve Clerk webhooks (POST /webhooks/clerk/{instance}) on this address, e.g. :9443; empty: off (polling only).")
	flag.StringVar(&webhookSecretFile, "clerk-webhook-secret-file", "",
		"File holding the webhook signing secret (whsec_…) of the manager's own key's Clerk endpoint.")
	var pprofAddr string
	flag.StringVar(&pprofAddr, "pprof-bind-address", "",
		"Serve Go's pprof profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty: off. For diagnosis only.")
	var maxDeletionsPerMinute int
	flag.IntVar(&maxDeletionsPerMinute, "max-deletions-per-minute", controller.DefaultMaxDeletionsPerMinute,
		"Deletion brake: at most this many Ban/Delete actions of deletion policies a minute, across all instances; "+
			"beyond it objects wait with reason DeletionThrottled. 0 turns the brake off.")
	var privateMetadataFrom bool
	flag.BoolVar(&privateMetadataFrom, "private-metadata-from", true,
		"Serve spec.privateMetadataFrom: watch the Secrets labelled clerk.kubeclerk.dev/private-metadata=true "+
			"in every namespace (needs cluster-wide get/list/watch on Secrets). false: read Secrets only in "+
			"--cluster-resource-namespace.")
	var batchObservation bool
	flag.BoolVar(&batchObservation, "batch-observation", true,
		"Read users in batches of up to 100 per Clerk call and poll for changed users, instead of "+
			"one read per user per sync.")
	flag.DurationVar(&fullReadInterval, "full-read-interval", 0,
		"With batched observation: how often every managed user is read again (100 per call) as a safety net "+
			"for changes the updated_at poll cannot see. 0: six sync periods.")
	flag.StringVar(&clusterResourceNamespace, "cluster-resource-namespace", "",
		"Where the ClerkInstances' Secrets live. Empty: the namespace the manager runs in (from its service "+
			"account), else kubeclerk-system.")
	flag.StringVar(&clerkKeyFile, "clerk-secret-key-file", "",
		"File holding the Clerk instance secret key (sk_live_… or sk_test_…). "+
			"Without it the key is read from the CLERK_SECRET_KEY environment variable.")
	flag.StringVar(&clerkAPIURL, "clerk-api-url", clerk.DefaultBaseURL, "Clerk Backend API base URL.")
	flag.DurationVar(&syncPeriod, "sync-period", controller.DefaultSyncPeriod,
		"How often each Clerk user is read again to catch out-of-band changes (jittered by up to 10%).")
	flag.Float64Var(&clerkRPS, "clerk-requests-per-second", 0,
		"Client-side budget for Clerk calls. 0: half of Clerk's published limit for the key type "+
			"(sk_live_: 50/s, sk_test_: 5/s).")
	flag.IntVar(&clerkBurst, "clerk-burst", 0, "Burst of the client-side budget. 0: one second of the rate.")
	flag.IntVar(&maxConcurrent, "max-concurrent-reconciles", 0,
		"Reconcile workers. 0: enough to use the whole budget at Clerk's latency.")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	flag.BoolVar(&enableLeaderElection, "leader-elect", false,
		"Enable leader election for controller manager. "+
			"Enabling this will ensure there is only one active controller manager.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"If set, the metrics endpoint is served securely via HTTPS. Use --metrics-secure=false to use HTTP instead.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "",
		"The directory that contains the metrics server certificate.")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "The name of the metrics server certificate file.")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "The name of the metrics server key file.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false,
		"If set, HTTP/2 will be enabled for the metrics server")
	opts := zap.Options{
		Development: true,
	}
	var showVersion bool
	flag.BoolVar(&showVersion, "version", false, "Print the version and exit.")
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if showVersion {
		fmt.Println(version.String("kubeclerk"))
		return
	}
	clerk.Version = version.Version // the User-Agent sent to Clerk
	memoryLimit := tuneMemory()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))

	// Configuration errors end the process with a plain message, before anything starts.
	secretKey, err := readSecretKey(clerkKeyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeclerk: no Clerk secret key:", err)
		os.Exit(2)
	}
	webhookSecret, err := readWebhookSecret(webhookSecretFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeclerk:", err)
		os.Exit(2)
	}
	// Without a key of its own the manager serves ClerkInstances only.
	m := metrics.New()
	if err := m.Register(nil, version.Version, version.CommitOrVCS()); err != nil {
		fmt.Fprintln(os.Stderr, "kubeclerk: register metrics:", err)
		os.Exit(1)
	}
	var clerkClient *clerk.Client
	budget := clerk.DefaultRequestsPerSecond("sk_live_") // workers for live instances
	if secretKey != "" {
		clerkClient, err = clerk.New(clerk.Options{BaseURL: clerkAPIURL, SecretKey: secretKey,
			RequestsPerSecond: clerkRPS, Burst: clerkBurst, Observer: m.Client(metrics.DefaultInstance)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubeclerk: invalid Clerk settings:", err)
			os.Exit(2)
		}
		budget = float64(clerkClient.Limiter().Limit())
		m.SetBudget(metrics.DefaultInstance, budget)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = defaultWorkers(budget)
	}

	// if the enable-http2 flag is false (the default), http/2 should be disabled
	// due to its vulnerabilities. More specifically, disabling http/2 will
	// prevent from being vulnerable to the HTTP/2 Stream Cancellation and
	// Rapid Reset CVEs. For more information see:
	// - https://github.com/advisories/GHSA-qppj-fm5r-hxr3
	// - https://github.com/advisories/GHSA-4374-p667-p6c8
	disableHTTP2 := func(c *tls.Config) {
		setupLog.Info("Disabling HTTP/2")
		c.NextProtos = []string{"http/1.1"}
	}

	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, disableHTTP2)
	}

	// Metrics endpoint is enabled in 'config/default/kustomization.yaml'. The Metrics options configure the server.
	// More info:
	// - https://pkg.go.dev/sigs.k8s.io/controller-runtime@v0.25.0/pkg/metrics/server
	// - https://book.kubebuilder.io/reference/metrics.html
	metricsServerOptions := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}

	if secureMetrics {
		// FilterProvider is used to protect the metrics endpoint with authn/authz.
		// These configurations ensure that only authorized users and service accounts
		// can access the metrics endpoint. The RBAC are configured in 'config/rbac/kustomization.yaml'.
		// metricsauth.Filter does what controller-runtime's filters.WithAuthenticationAndAuthorization does,
		// without its dependency on k8s.io/apiserver (see the package documentation).
		metricsServerOptions.FilterProvider = metricsauth.Filter
	}

	// If the certificate is not specified, controller-runtime will automatically
	// generate self-signed certificates for the metrics server. While convenient for development and testing,
	// this setup is not recommended for production.
	//
	// TODO(user): If you enable certManager, uncomment the following lines:
	// - [METRICS-WITH-CERTS] at config/default/kustomization.yaml to generate and use certificates
	// managed by cert-manager for the metrics server.
	// - [PROMETHEUS-WITH-CERTS] at config/prometheus/kustomization.yaml for TLS certification.
	if len(metricsCertPath) > 0 {
		setupLog.Info("Initializing metrics certificate watcher using provided certificates",
			"metrics-cert-path", metricsCertPath, "metrics-cert-name", metricsCertName, "metrics-cert-key", metricsCertKey)

		metricsServerOptions.CertDir = metricsCertPath
		metricsServerOptions.CertName = metricsCertName
		metricsServerOptions.KeyName = metricsCertKey
	}

	if clusterResourceNamespace == "" {
		clusterResourceNamespace = ownNamespace()
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme: scheme,
		// Secrets are read (and cached) in the manager's own namespace, and elsewhere only when
		// labelled for privateMetadataFrom.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: controller.SecretCache(clusterResourceNamespace, privateMetadataFrom),
		}, DefaultTransform: controller.TrimForCache},
		Metrics:                metricsServerOptions,
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		LeaderElection:         enableLeaderElection,
		LeaderElectionID:       "4912c7a9.kubeclerk.dev",
		// The lease lives in the manager's namespace, in a cluster or outside one.
		LeaderElectionNamespace: clusterResourceNamespace,
		// LeaderElectionReleaseOnCancel defines if the leader should step down voluntarily
		// when the Manager ends. This requires the binary to immediately end when the
		// Manager is stopped, otherwise, this setting is unsafe. Setting this significantly
		// speeds up voluntary leader transitions as the new leader don't have to wait
		// LeaseDuration time first.
		//
		// In the default scaffold provided, the program ends immediately after
		// the manager stops, so would be fine to enable this option. However,
		// if you are doing or is intended to do any operation such as perform cleanups
		// after the manager stops then its usage might be unsafe.
		// LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		setupLog.Error(err, "Failed to start manager")
		os.Exit(1)
	}

	ctx := ctrl.SetupSignalHandler()
	// One Event per Clerk write, through a recorder whose memory is bounded (client-go's keeps
	// every Event for six minutes). It is not one of the manager's runnables: those stop before
	// the controllers, and the last reconciles' Events would be lost.
	rec, err := recorder.NewForConfig(mgr.GetConfig(), mgr.GetHTTPClient(), mgr.GetScheme(), "kubeclerk", ctrl.Log.WithName("events"))
	if err != nil {
		setupLog.Error(err, "Failed to create the event recorder")
		os.Exit(1)
	}
	stopRecorder := rec.Background()
	instanceClients := &instance.Clients{Metrics: m}
	users := &controller.ClerkUserReconciler{
		Clients:                 instanceClients,
		NoPrivateMetadataFrom:   !privateMetadataFrom,
		Metrics:                 m,
		DeletionBrake:           controller.NewDeletionBrake(maxDeletionsPerMinute, ctrl.Log.WithName("deletion-brake")),
		Client:                  mgr.GetClient(),
		Recorder:                rec,
		SyncPeriod:              syncPeriod,
		MaxConcurrentReconciles: maxConcurrent,
	}
	if batchObservation {
		// Without a key of its own, the batched observer only lends its settings to the
		// ClerkInstances' observers.
		b := &observe.Batch{MaxAge: syncPeriod, FullReadInterval: fullReadInterval}
		if clerkClient != nil {
			b.Clerk = clerkClient
		}
		users.Observer = b
	}
	if clerkClient != nil {
		users.Clerk = clerkClient
	}
	if err := users.SetupWithManager(ctx, mgr); err != nil {
		setupLog.Error(err, "Failed to create controller", "controller", "clerkuser")
		os.Exit(1)
	}
	instances := &controller.ClerkInstanceReconciler{
		Client:      mgr.GetClient(),
		Clients:     instanceClients,
		Namespace:   clusterResourceNamespace,
		ProbePeriod: syncPeriod,
	}
	if err := instances.SetupWithManager(ctx, mgr); err != nil {
		setupLog.Error(err, "Failed to create controller", "controller", "clerkinstance")
		os.Exit(1)
	}
	if webhookAddr != "" {
		if err := mgr.Add(newWebhookServer(webhookAddr, webhookSecret, users, instances, m, ctrl.Log.WithName("webhooks"))); err != nil {
			setupLog.Error(err, "Failed to add the webhook server")
			os.Exit(1)
		}
	}
	// +kubebuilder:scaffold:builder

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up ready check")
		os.Exit(1)
	}

	if memoryLimit > 0 {
		setupLog.Info("Go memory limit set from the container's", "GOMEMLIMIT", memoryLimit)
	}
	if clerkClient != nil {
		setupLog.Info("Starting manager", "clerkAPIURL", clerkClient.BaseURL(), "syncPeriod", syncPeriod,
			"clerkRequestsPerSecond", budget, "workers", maxConcurrent)
	} else {
		setupLog.Info("Starting manager without a Clerk key of its own (CLERK_SECRET_KEY, --clerk-secret-key-file): "+
			"it serves ClerkInstances only; ClerkUsers without spec.instanceRef wait with reason InstanceNotReady",
			"syncPeriod", syncPeriod, "workers", maxConcurrent)
	}
	err = mgr.Start(ctx)
	if rerr := stopRecorder(); rerr != nil {
		setupLog.Error(rerr, "Event recorder")
	}
	if err != nil {
		setupLog.Error(err, "Failed to run manager")
		os.Exit(1)
	}
}

// readSecretKey returns the Clerk secret key from file (when given) or CLERK_SECRET_KEY, or ""
// when neither is set. Errors never contain the key.
func readSecretKey(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read --clerk-secret-key-file: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("--clerk-secret-key-file %s is empty; put the instance secret key (sk_live_… or sk_test_…) in it", file)
		}
		return key, nil
	}
	if key := strings.TrimSpace(os.Getenv("CLERK_SECRET_KEY")); key != "" {
		return key, nil
	}
	// No key of its own: the manager serves ClerkInstances only.
	return "", nil
}

// defaultWorkers is enough workers to spend the whole budget when each Clerk call takes about
// 200 ms: two calls in flight per request/s, at least 2 and at most 100.
func defaultWorkers(perSecond float64) int {
	return min(100, max(2, int(math.Ceil(perSecond*0.2*2))))
}

// serviceAccountNamespaceFile holds the namespace of a pod's service account.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ownNamespace is the namespace the manager runs in, else kubeclerk-system (outside a cluster).
func ownNamespace() string {
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "kubeclerk-system"
}
