// Command chat-server is the scalable-chat-go server: a Socket.IO v4 chat
// backend that an unmodified socket.io-client app uses as it used the
// original Node.js server. With no configuration it runs alone: in-memory
// fan-out and a local SQLite file; DATABASE_URL puts the messages in
// PostgreSQL instead, in the original server's Prisma schema.
//
// main reads the configuration, picks the engines, wires them, serves, and
// shuts down gracefully on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/scalable-chat-go/server/chat"
	"github.com/scalable-chat-go/server/config"
	"github.com/scalable-chat-go/server/httpapi"
	"github.com/scalable-chat-go/server/hub"
	"github.com/scalable-chat-go/server/socketio"
	"github.com/scalable-chat-go/server/socketio/adminui"
	"github.com/scalable-chat-go/server/sqlstore"
)

func main() {
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(os.Stderr, "chat-server: bad configuration:\n%v\n", err)
		os.Exit(2)
	}
	logger := newLogger(cfg)
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("chat-server stopped", "err", err)
		os.Exit(1)
	}
}

// startPprof serves Go's profiler on addr, apart from the public port (give
// it a loopback address: it is for operators, not clients).
func startPprof(addr string, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	go func() {
		srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		logger.Info("profiler listening", "addr", addr)
		if err := srv.ListenAndServe(); err != nil {
			logger.Error("profiler stopped", "err", err)
		}
	}()
}

// adminOptions turns the Socket.IO Admin UI's namespace on when ADMIN_UI
// says so.
func adminOptions(cfg config.Config) *adminui.Options {
	if !cfg.AdminUI.Enabled {
		return nil
	}
	return &adminui.Options{
		Username:         cfg.AdminUI.Username,
		PasswordHash:     []byte(cfg.AdminUI.PasswordHash),
		SocketsLimit:     cfg.AdminUI.SocketsLimit,
		FetchTimeout:     cfg.RedisRequestTimeout,
		SignInBackoffMax: cfg.AdminUI.SignInBackoffMax,
	}
}

func newLogger(cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// openStore opens PostgreSQL when DATABASE_URL is set (migrating it unless
// MIGRATE=off), else SQLite in DATA_DIR. where names the database for logs,
// never with its password.
func openStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (store *sqlstore.Store, kind, where string, err error) {
	if cfg.DatabaseURL == "" {
		where = filepath.Join(cfg.DataDir, "chat.db")
		store, err = sqlstore.OpenSQLite(ctx, where)
		return store, "sqlite", where, err
	}
	where = sqlstore.RedactURL(cfg.DatabaseURL)
	migrate := map[bool]string{true: "on", false: "off"}[cfg.Migrate]
	logger.Info("opening the PostgreSQL store", "db", where, "migrate", migrate)
	store, err = sqlstore.OpenPostgres(ctx, cfg.DatabaseURL, sqlstore.PostgresOptions{
		SkipMigrations: !cfg.Migrate,
		LockTimeout:    cfg.MigrateLockTimeout,
		Logger:         logger.With("component", "store"),
	})
	return store, "postgres", where, err
}

// roomRing is the ring of a room other than global: ROOM_HISTORY_RING_SIZE,
// or HISTORY_LIMIT when that is larger, so that a node whose store is down
// still has a newcomer's whole history of what it delivered.
func roomRing(cfg config.Config) int { return max(cfg.RoomHistoryRingSize, cfg.HistoryLimit) }

// roomHistories is the hub's history of each room: global's is the one
// the API and moderation read too; another room's is made when the room
// first has a member here.
func roomHistories(global *chat.History, store chat.Store, ring int) func(string) *chat.History {
	return func(room string) *chat.History {
		if room == chat.GlobalRoom {
			return global
		}
		return chat.NewRoomHistory(store, room, ring)
	}
}

// roomStoreOf is the store's rooms, nil on a replica (rooms are refused
// there) or a store that keeps none.
func roomStoreOf(store any, replica bool) chat.RoomStore {
	if rs, ok := store.(chat.RoomStore); ok && !replica {
		return rs
	}
	return nil
}

// roomsAPI serves the rooms endpoints over the store's rooms.
func roomsAPI(rooms *chat.RoomService, store chat.Store, hb *hub.Hub, ring int) httpapi.RoomsOptions {
	o := httpapi.RoomsOptions{Service: rooms, Messages: store, History: hb.History, HistoryRing: ring}
	o.Store, _ = any(store).(chat.RoomStore)
	return o
}

// roomService is the rules of rooms over the store's rooms. A node that
// keeps a replica of the history in its own SQLite (REDIS_URL without
// DATABASE_URL) refuses rooms: the nodes would not share them.
func roomService(cfg config.Config, store any, hb *hub.Hub, replica bool) *chat.RoomService {
	anonymous := cfg.RoomsAnonymousMax
	if anonymous == 0 {
		anonymous = -1 // none
	}
	o := chat.RoomServiceOptions{Fanout: hb, Users: hb, Limits: chat.RoomLimits{
		RoomsPerUser: cfg.RoomsPerUser, MembersPerRoom: cfg.RoomMembersMax, AnonymousRooms: anonymous,
		NameLength: cfg.RoomNameMaxLength, CreatesPerMinute: cfg.RoomCreatesPerMin, DMsPerMinute: cfg.DMOpensPerMin,
	}}
	rs, ok := store.(chat.RoomStore)
	switch {
	case !ok:
		o.Unavailable = "this server's store keeps no rooms"
	case replica:
		o.Unavailable = "rooms need a database shared by the nodes: set DATABASE_URL (with REDIS_URL alone each node keeps its own SQLite, which rooms cannot be shared through)"
	default:
		o.Store = rs
	}
	return chat.NewRoomService(o)
}

// onReady, when a test sets it, is called with the metrics registry once
// every engine is wired and the node is ready.
var onReady func(*prometheus.Registry)

// run serves until ctx ends, then shuts down within SHUTDOWN_TIMEOUT.
func run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if len(cfg.KafkaBrokers) > 0 && cfg.DatabaseURL == "" {
		return errors.New("KAFKA_BROKERS needs DATABASE_URL: the consumer group spreads the topic's partitions over the nodes, " +
			"so they must all write one PostgreSQL database")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	store, storeKind, where, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer store.Close()

	wlog, err := newLogEngine(cfg, store, reg, logger)
	if err != nil {
		return err
	}
	history := chat.NewHistory(store, cfg.HistoryRingSize)

	verifier, err := newVerifier(cfg, logger)
	if err != nil {
		return err
	}
	authMode := chat.AuthMode(cfg.AuthMode)
	var edgeVerifier chat.Verifier
	if verifier != nil {
		edgeVerifier = verifier
	}

	checks := append([]httpapi.Check(nil), wlog.checks...)
	limits := chat.Limits{MaxMessageLength: cfg.MaxMessageLength, MaxUsernameLength: cfg.MaxUsernameLength}
	link, err := newClusterLink(cfg, reg, logger)
	if err != nil {
		return err
	}
	defer link.close()
	checks = append(checks, link.checks...)

	hb, err := hub.New(hub.Options{
		Broker:            link.broker,
		Presence:          link.presence,
		History:           roomHistories(history, store, roomRing(cfg)),
		Encoder:           socketio.NewEncoder(authMode, cfg.RecoveryWindow),
		HistoryLimit:      cfg.HistoryLimit,
		PresenceInterval:  cfg.PresenceInterval,
		PresenceListLimit: cfg.PresenceListLimit,
		TypingTimeout:     cfg.TypingTimeout,
		LogSize:           cfg.ResumeLogSize,
		EarlyAfter:        cfg.RedisEarlyAfter,
		Logger:            logger.With("component", "hub"),
		Registerer:        reg,
	})
	if err != nil {
		return err
	}
	defer hb.Close()
	moderation := chat.NewModeration(chat.ModerationOptions{
		Log:      wlog,
		Fanout:   hb,
		Control:  link.broker,
		History:  history,
		Bans:     store,
		Limits:   limits,
		OnAction: auditor(reg, logger),
		Replica:  link.replica,
		Rooms:    roomStoreOf(store, link.replica),
	})
	if err := moderation.Load(ctx); err != nil {
		return err
	}
	bctx, stopBans := context.WithCancel(context.Background())
	defer stopBans()
	go refreshBans(bctx, moderation, cfg.BanRefresh, logger)
	var names chat.NameClaims = &chat.LocalNameClaims{}
	if link.redis != nil {
		names = link.redis.Names()
	}
	var guestNames chat.NameClaims // what anonymous clients may not take
	if cfg.AuthGuest {
		guestNames = names
	}
	so := chat.ServiceOptions{Limits: limits, Delivered: hb.Delivered, WaitForLink: hb.Ordered(),
		Logger: logger.With("component", "accept")}
	if link.redis != nil {
		// Admitted client ids are remembered cluster-wide (CLIENT_ID_TTL).
		so.Claims = link.redis.ClientIDs(cfg.ClientIDTTL)
	}
	svc := chat.NewService(wlog, hb, so)
	rooms := roomService(cfg, store, hb, link.replica)

	edge, err := socketio.New(socketio.Options{
		Hub:                 hb,
		Accepter:            svc,
		Moderation:          moderation,
		Rooms:               rooms,
		Directory:           link.directory,
		ClientIDsWait:       link.redis != nil,
		PingInterval:        cfg.PingInterval,
		PingTimeout:         cfg.PingTimeout,
		ConnectTimeout:      cfg.ConnectTimeout,
		CORSOrigins:         cfg.CORSOrigins,
		MaxHTTPBufferSize:   cfg.MaxHTTPBufferSize,
		BodyTimeout:         cfg.HTTPBodyTimeout,
		RatePerSecond:       cfg.RateLimitPerSec,
		RateBurst:           cfg.RateLimitBurst,
		MaxConnections:      cfg.MaxConnections,
		MaxConnectionsPerIP: cfg.MaxConnectionsPerIP,
		TrustedProxies:      cfg.TrustedProxies,
		SendQueueLimit:      cfg.SendQueueLimit,
		RecoveryWindow:      cfg.RecoveryWindow,
		SweepInterval:       cfg.PresenceInterval,
		TypingRatePerSecond: cfg.TypingRatePerSec,
		Limits:              limits,
		Logger:              logger.With("component", "socketio"),
		Admin:               adminOptions(cfg),
		Registerer:          reg,
		AuthMode:            authMode,
		Verifier:            edgeVerifier,
		Names:               guestNames,
	})
	if err != nil {
		return err
	}
	// Every handler is known: the broker may start receiving.
	link.broker.RegisterEventHandler(hb)
	if link.replica {
		// No shared database: every node keeps a replica of the history.
		link.broker.RegisterEventHandler(chat.NewReplica(wlog, logger.With("component", "replica")))
	}
	link.broker.RegisterControlHandler(moderation)
	link.directory.RegisterDirectoryHandler(edge)
	if err := link.broker.Run(); err != nil {
		_ = edge.Close(ctx)
		return err
	}
	trust := httpapi.TrustOptions{
		AuthMode:              authMode,
		Verifier:              edgeVerifier,
		AdminToken:            cfg.AdminToken,
		Moderation:            moderation,
		Names:                 names,
		GuestTTL:              cfg.AuthGuestTTL,
		GuestMaxLifetime:      cfg.AuthGuestMaxLifetime,
		GuestSignInsPerMinute: cfg.AuthGuestSignInsPerMin,
		GuestNamesPerAddress:  cfg.AuthGuestNamesPerIP,
		Limits:                limits,
		Logger:                logger.With("component", "api"),
	}
	if cfg.AuthGuest && verifier != nil && verifier.CanSign() {
		trust.Guests = verifier
	}

	api := httpapi.New(httpapi.Options{
		History:     history,
		Gatherer:    reg,
		Checks:      checks,
		AllowOrigin: edge.AllowsOrigin,
		Presence:    func() chat.PresenceView { return hb.PresenceView(chat.GlobalRoom) },
		Details:     link.details,
		Trust:       trust,
		Rooms:       roomsAPI(rooms, store, hb, roomRing(cfg)),
		ClientAddr:  edge.ClientAddr,
		NoMetrics:   cfg.MetricsAddr != "",
	})
	mux := http.NewServeMux()
	api.Register(mux)
	// The Socket.IO endpoint's responses (polling bodies, errors) carry the
	// API's security headers too.
	mux.Handle("/socket.io/", httpapi.SecureHeaders(edge.Handler()))

	srv := &http.Server{
		Handler:           httpapi.BodyDeadline(cfg.HTTPBodyTimeout, mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	tcp, err := net.Listen("tcp", cfg.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr(), err)
	}
	ln := httpapi.NewConnLimiter(tcp.(*net.TCPListener), cfg.HTTPMaxConnsPerIP, cfg.TrustedProxies, reg, logger)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if cfg.PprofAddr != "" {
		startPprof(cfg.PprofAddr, logger)
	}
	if cfg.MetricsAddr != "" {
		msrv := startMetrics(cfg.MetricsAddr, api.MetricsHandler(), logger)
		defer msrv.Close()
	}
	api.SetReady()
	if onReady != nil {
		onReady(reg)
	}
	switch {
	case cfg.AdminUI.Enabled && cfg.AdminUI.Username == "":
		logger.Warn("the Socket.IO Admin UI's namespace /admin is open to anyone (ADMIN_UI=noauth)")
	case cfg.AdminUI.Enabled:
		logger.Info("the Socket.IO Admin UI's namespace /admin is on", "username", cfg.AdminUI.Username)
	}
	logger.Info("chat-server ready",
		"addr", ln.Addr().String(), "store", storeKind, "db", where, "fanout", link.kind, "log", wlog.kind,
		"auth", authMode, "guest", trust.Guests != nil, "env_files", cfg.EnvFiles)

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve HTTP: %w", err)
	}

	// Graceful shutdown: not ready, stop accepting, disconnect clients,
	// store every accepted message, exit.
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	api.SetDraining()
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Shutdown(sctx) }()
	if err := edge.Close(sctx); err != nil {
		logger.Warn("closing client connections", "err", err)
	}
	hb.Close()
	link.shutdown(sctx)
	var firstErr error
	if err := wlog.Close(sctx); err != nil {
		firstErr = err
	}
	if err := wlog.stop(sctx); err != nil {
		logger.Warn("stopping the log", "err", err)
	}
	if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("HTTP shutdown", "err", err)
		_ = srv.Close()
	}
	logger.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return firstErr
}
