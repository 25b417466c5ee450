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

// Command kubectl-clerk is the kubectl plugin of kubeclerk (kubectl clerk …): it exports
// existing Clerk users as ClerkUser YAML, shows the state of ClerkUsers, and asks for a sync.
//
// Install it with
//
//	go install github.com/kubeclerk/kubeclerk/cmd/kubectl-clerk@latest
//
// or put the kubectl-clerk binary anywhere on PATH.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	// Kubernetes client auth plugins (OIDC, exec, …) for the kubeconfig.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubeclerk/kubeclerk/internal/clerk"
	"github.com/kubeclerk/kubeclerk/internal/version"
)

const program = "kubectl-clerk"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad flags or arguments
)

// app is the plugin with its surroundings, replaceable in tests.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// kube returns a Kubernetes client and the kubeconfig context's namespace.
	kube func(kubeFlags) (client.Client, string, error)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now, kube: kubeClient}
	code := a.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

const usage = `kubectl clerk: manage Clerk users declared as ClerkUser objects (kubeclerk).

Commands:
  export      print existing Clerk users as ClerkUser YAML (managementPolicy: Observe)
  status      list ClerkUsers with their Ready reason and pending changes
  reconcile   ask kubeclerk to sync ClerkUsers now
  version     print the version

Usage:
  kubectl clerk COMMAND [flags]
  kubectl clerk COMMAND --help
  kubectl clerk --version
`

// run runs the plugin with the arguments after the program name and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.printf(a.stderr, "%s", usage)
		return exitUsage
	}
	clerk.Version = version.Version
	cmd, rest := args[0], args[1:]
	if isHelp(cmd) || cmd == "help" {
		if len(rest) > 0 && rest[0] != "help" && !isHelp(rest[0]) {
			return a.run(ctx, []string{rest[0], helpFlag})
		}
		a.printf(a.stdout, "%s", usage)
		return exitOK
	}
	switch cmd {
	case "--version", "-version", "version":
		a.printf(a.stdout, "%s\n", version.String(program))
		return exitOK
	case "export":
		return a.export(ctx, rest)
	case "status":
		return a.status(ctx, rest)
	case "reconcile":
		return a.reconcile(ctx, rest)
	}
	a.printf(a.stderr, "%s: unknown command %q\n\n%s", program, cmd, usage)
	return exitUsage
}

const helpFlag = "--help"

func isHelp(s string) bool { return s == "-h" || s == helpFlag || s == "-help" }

// printf writes to the terminal; a failed write there has nowhere to be reported.
func (a *app) printf(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

// parse parses a command's flags; on --help it prints help and returns done with exitOK, on a
// bad flag it prints the error and a hint and returns done with exitUsage.
func (a *app) parse(fs *flag.FlagSet, help string, args []string) (pos []string, code int, done bool) {
	pos, err := parseInterspersed(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		a.printf(a.stdout, "%s", help)
		return nil, exitOK, true
	case err != nil:
		a.printf(a.stderr, "%s %s: %v\nSee 'kubectl clerk %s --help'.\n", program, fs.Name(), err, fs.Name())
		return nil, exitUsage, true
	}
	return pos, exitOK, false
}

// fail prints a command's error and returns exitError.
func (a *app) fail(cmd string, err error) int {
	a.printf(a.stderr, "%s %s: %v\n", program, cmd, err)
	return exitError
}

// usageError prints a usage error and returns exitUsage.
func (a *app) usageError(cmd, format string, args ...any) int {
	a.printf(a.stderr, "%s %s: %s\nSee 'kubectl clerk %s --help'.\n", program, cmd, fmt.Sprintf(format, args...), cmd)
	return exitUsage
}

func userAgent() string {
	return program + "/" + version.Version + " (+https://github.com/kubeclerk/kubeclerk)"
}
