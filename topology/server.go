package topology

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig describes one embedded nats-server with JetStream.
type ServerConfig struct {
	// Name is the server name (defaults to "zester-<port>").
	Name string
	// Listen is the client address, host:port; port 0 or -1 picks a free port.
	Listen string
	// Monitor is the HTTP monitoring address (/jsz, /varz); empty disables it.
	Monitor string
	// StoreDir is the JetStream store root; nats-server puts jetstream/ under it.
	StoreDir string
	// JetStreamDomain is the server's JetStream domain: set on leaf nodes
	// that run their own JetStream, and on hubs whose leaf clients address
	// them by domain (see the package doc).
	JetStreamDomain string
	// NoJetStream runs a plain core server (a leaf node without JetStream).
	NoJetStream bool
	// MaxPayload overrides the server's maximum message size when > 0.
	MaxPayload int32
	// Logger receives the server's log lines; nil keeps the server quiet
	// except for fatal start-up errors, which are returned by Start.
	Logger *slog.Logger
	// Tune, when set, may change the options after Zester filled them in
	// (cluster routes, leaf remotes, gateways, mappings).
	Tune func(*server.Options)
}

// Server is a running embedded nats-server.
type Server struct {
	cfg  ServerConfig
	opts *server.Options
	ns   *server.Server
}

// StartServer starts one embedded server and waits until it accepts clients
// and, when JetStream is on, until JetStream is ready.
func StartServer(cfg ServerConfig) (*Server, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, opts: opts}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (c ServerConfig) options() (*server.Options, error) {
	host, port := "127.0.0.1", -1
	if c.Listen != "" {
		h, p, err := splitHostPort(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", c.Listen, err)
		}
		host, port = h, p
	}
	opts := &server.Options{
		ServerName: c.Name,
		Host:       host,
		Port:       port,
		NoSigs:     true,
		JetStream:  !c.NoJetStream,
		StoreDir:   c.StoreDir,
		MaxPayload: c.MaxPayload,
	}
	if opts.ServerName == "" && port > 0 {
		opts.ServerName = "zester-" + strconv.Itoa(port)
	}
	if c.JetStreamDomain != "" {
		opts.JetStreamDomain = c.JetStreamDomain
	}
	if c.Monitor != "" {
		h, p, err := splitHostPort(c.Monitor)
		if err != nil {
			return nil, fmt.Errorf("monitor %q: %w", c.Monitor, err)
		}
		opts.HTTPHost, opts.HTTPPort = h, p
	}
	if opts.JetStream {
		if opts.StoreDir == "" {
			return nil, fmt.Errorf("store dir: empty (JetStream needs a directory)")
		}
		if err := os.MkdirAll(opts.StoreDir, 0o750); err != nil {
			return nil, fmt.Errorf("store dir: %w", err)
		}
		if err := checkStoreDir(opts.StoreDir); err != nil {
			return nil, err
		}
	}
	if c.Tune != nil {
		c.Tune(opts)
	}
	return opts, nil
}

func splitHostPort(addr string) (string, int, error) {
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < -1 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	if p == 0 {
		p = -1
	}
	if h == "" {
		h = "127.0.0.1"
	}
	return h, p, nil
}

func (s *Server) start() error {
	// Options are consumed by NewServer; work on a copy so Restart can reuse them.
	o := s.opts.Clone()
	ns, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	// Always log through a recorder, so a fatal start-up error (port in
	// use, bad store dir) is returned at once instead of after a timeout.
	logger := s.cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rec := &fatalRecorder{Logger: &slogAdapter{l: logger}}
	ns.SetLoggerV2(rec, false, false, false)
	ns.Start()
	for deadline := time.Now().Add(20 * time.Second); !ns.ReadyForConnections(50 * time.Millisecond); {
		if msg := rec.fatal(); msg != "" {
			ns.Shutdown()
			return fmt.Errorf("nats-server %s: %s", o.ServerName, msg)
		}
		if time.Now().After(deadline) {
			ns.Shutdown()
			return fmt.Errorf("nats-server %s: not ready for connections after 20s (port in use or bad store dir %q?)", o.ServerName, o.StoreDir)
		}
	}
	// Remember the ports picked at random so a restart binds the same ones.
	if s.opts.Port <= 0 {
		s.opts.Port = ns.Addr().(*net.TCPAddr).Port
	}
	if s.opts.HTTPPort < 0 || (s.opts.HTTPHost != "" && s.opts.HTTPPort == 0) {
		if a := ns.MonitorAddr(); a != nil {
			s.opts.HTTPPort = a.Port
		}
	}
	if s.opts.ServerName == "" {
		s.opts.ServerName = ns.Name()
	}
	s.ns = ns
	return nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string {
	return fmt.Sprintf("nats://%s:%d", s.opts.Host, s.opts.Port)
}

// MonitorURL is the http:// monitoring URL, or "" when monitoring is off.
func (s *Server) MonitorURL() string {
	if a := s.ns.MonitorAddr(); a != nil {
		return "http://" + a.String()
	}
	return ""
}

// Name is the server's name.
func (s *Server) Name() string { return s.ns.Name() }

// NATS is the underlying server, for launchers and tests.
func (s *Server) NATS() *server.Server { return s.ns }

// Options are the server's effective options (ports resolved).
func (s *Server) Options() *server.Options { return s.opts }

// InProcess is a nats.Option that connects to this server without TCP.
func (s *Server) InProcess() nats.Option { return nats.InProcessServer(s.ns) }

// Running reports whether the server is up.
func (s *Server) Running() bool { return s.ns != nil && s.ns.Running() }

// Shutdown stops accepting clients, lets JetStream flush, and stops the server.
func (s *Server) Shutdown() {
	if s.ns == nil {
		return
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Restart starts a stopped server again on the same ports and store.
func (s *Server) Restart() error {
	if s.Running() {
		s.Shutdown()
	}
	return s.start()
}

// WaitJetStream waits until JetStream answers on this server (clustered
// JetStream needs a meta leader first).
func (s *Server) WaitJetStream(ctx context.Context) error {
	if !s.opts.JetStream {
		return nil
	}
	for {
		if s.ns.JetStreamEnabled() && (!s.ns.JetStreamIsClustered() || s.ns.JetStreamIsCurrent()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jetstream on %s not ready: %w", s.ns.Name(), ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Single starts one server with JetStream on a free loopback port, its store
// under dir. It is the launcher tests use for the embedded default.
func Single(dir string, logger *slog.Logger) (*Server, error) {
	return StartServer(ServerConfig{Name: "single", Listen: "127.0.0.1:-1", StoreDir: filepath.Join(dir, "nats"), Logger: logger})
}

// fatalRecorder keeps the first fatal error and passes every line on to
// the logger it embeds.
type fatalRecorder struct {
	server.Logger
	mu  sync.Mutex
	msg string
}

func (r *fatalRecorder) fatal() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msg
}

func (r *fatalRecorder) Fatalf(format string, v ...any) {
	r.mu.Lock()
	if r.msg == "" {
		r.msg = fmt.Sprintf(format, v...)
	}
	r.mu.Unlock()
	r.Logger.Fatalf(format, v...)
}

// slogAdapter routes nats-server's logger into slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
