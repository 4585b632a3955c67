package main

import (
	"context"
	"fmt"
	"net/http"
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

func httpHandler(reg *prometheus.Registry, in *infra, extra ...readinessCheck) http.Handler {
	checks := append([]readinessCheck{
		{"mongo", in.Store.Ping},
		{"nats", func(context.Context) error {
			if in.NC.Status() != nats.CONNECTED {
				return fmt.Errorf("status %s", in.NC.Status())
			}
			return nil
		}},
	}, extra...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		failed := false
		for _, c := range checks {
			if err := c.check(ctx); err != nil {
				failed = true
				fmt.Fprintf(w, "%s: not ready: %v\n", c.name, err)
				continue
			}
			fmt.Fprintf(w, "%s: ok\n", c.name)
		}
		if failed {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	return mux
}
