// Package obs holds what both daemons share for being observed: JSON logs
// through log/slog backed by zap, the /healthz, /readyz and /metrics HTTP
// endpoints, and Prometheus metrics through VictoriaMetrics/metrics.
package obs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"
)

// NewLogger returns a JSON slog.Logger writing to w through zap.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "time"
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(encCfg), zapcore.Lock(zapcore.AddSync(w)), zapLevel(level))
	return slog.New(zapslog.NewHandler(core))
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l <= slog.LevelDebug:
		return zapcore.DebugLevel
	case l <= slog.LevelInfo:
		return zapcore.InfoLevel
	case l <= slog.LevelWarn:
		return zapcore.WarnLevel
	default:
		return zapcore.ErrorLevel
	}
}

// StderrLogger is a daemon's logger before its caller gives it one: JSON
// on stderr at level, a validated configuration's log_level (info if it
// does not parse).
func StderrLogger(level string) *slog.Logger {
	l, _ := ParseLevel(level)
	return NewLogger(os.Stderr, l)
}

// ParseLevel reads debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// ReadyFunc reports nil when the daemon is ready, or why it is not.
type ReadyFunc func(ctx context.Context) error

// EnvPprof, set to 1, adds Go's /debug/pprof/ handlers to the listener
// (docs/configuration.md).
const EnvPprof = "ZESTER_PPROF"

// HTTP serves /healthz, /readyz and /metrics.
type HTTP struct {
	srv *http.Server
	ln  net.Listener
	set *metrics.Set
}

// ListenHTTP binds addr and serves the endpoints until Close. set's metrics
// are written after the process metrics.
func ListenHTTP(addr string, set *metrics.Set, ready ReadyFunc) (*HTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain")
		if err := ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready: "+err.Error()+"\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		metrics.WriteProcessMetrics(w)
		set.WritePrometheus(w)
	})
	if os.Getenv(EnvPprof) == "1" {
		// Opt-in only: profiles expose stacks and cost CPU while taken.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	h := &HTTP{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, set: set}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("http server", "err", err)
		}
	}()
	return h, nil
}

// Addr is the bound address.
func (h *HTTP) Addr() string { return h.ln.Addr().String() }

// Close stops the server.
func (h *HTTP) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return h.srv.Shutdown(ctx)
}
