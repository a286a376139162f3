package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/config"
	"github.com/scalable-chat-go/server/jwtauth"
)

// newVerifier returns the token verifier of AUTH_JWT_SECRET and
// AUTH_JWKS_URL, or nil when neither is set.
func newVerifier(cfg config.Config, logger *slog.Logger) (*jwtauth.Verifier, error) {
	if cfg.AuthJWTSecret == "" && cfg.AuthJWKSURL == "" {
		return nil, nil
	}
	var secret []byte
	if cfg.AuthJWTSecret != "" {
		secret = []byte(cfg.AuthJWTSecret)
	}
	return jwtauth.New(jwtauth.Options{
		Secret:          secret,
		JWKSURL:         cfg.AuthJWKSURL,
		Issuer:          cfg.AuthIssuer,
		Audience:        cfg.AuthAudience,
		ClockSkew:       cfg.AuthClockSkew,
		MaxKeysPerToken: cfg.AuthMaxKeysPerToken,
		Limits:          chat.Limits{MaxMessageLength: cfg.MaxMessageLength, MaxUsernameLength: cfg.MaxUsernameLength},
		Logger:          logger.With("component", "auth"),
	})
}

// auditor logs every moderation action (who, what, when) and counts it.
func auditor(reg prometheus.Registerer, logger *slog.Logger) func(chat.Action) {
	actions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chat_moderation_actions_total", Help: "Moderation actions taken on this node, by action (delete, ban, unban).",
	}, []string{"action"})
	reg.MustRegister(actions)
	for _, a := range []string{"delete", "ban", "unban"} {
		actions.WithLabelValues(a)
	}
	log := logger.With("component", "moderation")
	return func(a chat.Action) {
		actions.WithLabelValues(a.Kind).Inc()
		log.Info("moderation", "action", a.Kind, "by", a.By, "target", a.Target, "at", a.At.UTC().Format(chat.TimeLayout))
	}
}

// refreshBans reads the bans in force from the store every interval until
// ctx ends: bans a node missed (its cluster link was down) come in so.
func refreshBans(ctx context.Context, m *chat.Moderation, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := m.Load(lctx); err != nil && ctx.Err() == nil {
			logger.Warn("bans could not be read again; keeping the ones known", "err", err)
		}
		cancel()
	}
}

// startMetrics serves /metrics (and the profiler) on addr, apart from the
// public port (METRICS_ADDR).
func startMetrics(addr string, metrics http.Handler, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		logger.Info("metrics and profiler listening", "addr", addr)
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			logger.Error("metrics listener stopped", "err", err)
		}
	}()
	return srv
}
