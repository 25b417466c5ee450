// Package argocd runs kubeclerk's Argo CD health checks (config/argocd/resource_customizations)
// the way Argo CD does, with gopher-lua, its Lua interpreter, and renders the argocd-cm patch
// that installs them (config/argocd/argocd-cm-patch.yaml). Its tests check the Lua against the
// health_test.yaml cases, and the patch against the Lua files.
package argocd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Health statuses a health check may return, as Argo CD's gitops-engine defines them
// (pkg/health/health.go).
const (
	StatusHealthy     = "Healthy"
	StatusProgressing = "Progressing"
	StatusDegraded    = "Degraded"
	StatusSuspended   = "Suspended"
	StatusMissing     = "Missing"
	StatusUnknown     = "Unknown"
)

// invalidHealthStatus is the message Argo CD reports for a status outside the list above.
const invalidHealthStatus = "Lua returned an invalid health status"

// scriptTimeout is how long Argo CD lets a health script run (util/lua/lua.go).
const scriptTimeout = time.Second

// HealthStatus is the result of a health check: the healthStatus of a health_test.yaml case.
type HealthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// Health runs the health check script on obj, a decoded Kubernetes object, as Argo CD's
// ExecuteHealthLua does (util/lua/lua.go): obj is the global "obj", the script runs with a one
// second deadline, and it must return a table holding status and message.
//
// openLibs selects the Lua standard libraries. Argo CD opens them for the checks bundled in its
// resource_customizations directory; a check installed through argocd-cm runs without them
// (unless resource.customizations.useOpenLibs.<group>_<kind> is set), with only the base,
// package and table libraries and a reduced os library, which kubeclerk's checks do not use.
func Health(script string, obj map[string]any, openLibs bool) (HealthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	if !openLibs {
		for name, open := range map[string]lua.LGFunction{
			lua.LoadLibName: lua.OpenPackage,
			lua.BaseLibName: lua.OpenBase,
			lua.TabLibName:  lua.OpenTable,
		} {
			if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
				return HealthStatus{}, fmt.Errorf("open Lua library %q: %w", name, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return HealthStatus{}, err
	}
	return healthStatusOf(l.Get(-1))
}

// healthStatusOf reads the value a health script returned, as Argo CD does: a table with
// string fields status and message (both optional); nil means no health; a status Argo CD does
// not know is reported as Unknown.
func healthStatusOf(v lua.LValue) (HealthStatus, error) {
	switch v.Type() {
	case lua.LTNil:
		return HealthStatus{}, nil
	case lua.LTTable:
	default:
		return HealthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", v.Type())
	}
	t := v.(*lua.LTable)
	var hs HealthStatus
	for field, dst := range map[string]*string{"status": &hs.Status, "message": &hs.Message} {
		switch f := t.RawGetString(field).(type) {
		case *lua.LNilType:
		case lua.LString:
			*dst = string(f)
		default:
			return HealthStatus{}, fmt.Errorf("field %s of the Lua result is a %s, not a string", field, f.Type())
		}
	}
	if hs == (HealthStatus{}) {
		return hs, nil
	}
	switch hs.Status {
	case StatusHealthy, StatusProgressing, StatusDegraded, StatusSuspended, StatusMissing, StatusUnknown:
		return hs, nil
	}
	return HealthStatus{Status: StatusUnknown, Message: invalidHealthStatus}, nil
}

// toLua converts a decoded JSON or YAML value into a Lua value, as Argo CD's decodeValue does:
// objects and arrays become tables, numbers (int64 from the API server, float64 from YAML)
// become Lua numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetString(k, toLua(l, item))
		}
		return t
	}
	return lua.LNil
}
