package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readinessCheck is one dependency /readyz asks about.
type readinessCheck struct {
	name  string
	check func(ctx context.Context) error
}

// infraChecks are the readiness checks of MongoDB and NATS, then extra.
func infraChecks(in *infra, extra ...readinessCheck) []readinessCheck {
	return append([]readinessCheck{
		{"mongo", in.Store.Ping},
		{"nats", func(context.Context) error {
			if in.NC.Status() != nats.CONNECTED {
				return fmt.Errorf("status %s", in.NC.Status())
			}
			return nil
		}},
	}, extra...)
}

// httpHandler serves the HTTP port: metrics, probes and, for operators,
// the admin routes /v1/… (admin, which checks the admin token; nil when
// no token is set: then /v1/… is not found).
func httpHandler(reg *prometheus.Registry, checks []readinessCheck, admin http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if admin != nil {
		mux.Handle("/v1/", admin)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		// The status goes out with the first byte of the body: decide it
		// before writing.
		var body strings.Builder
		status := http.StatusOK
		for _, c := range checks {
			if err := c.check(ctx); err != nil {
				status = http.StatusServiceUnavailable
				fmt.Fprintf(&body, "%s: not ready: %v\n", c.name, err)
				continue
			}
			fmt.Fprintf(&body, "%s: ok\n", c.name)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body.String())
	})
	return mux
}
