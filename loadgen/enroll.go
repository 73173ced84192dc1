package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/zester-io/zester/internal/backoff"
	"github.com/zester-io/zester/internal/config"
	"github.com/zester-io/zester/internal/enroll"
	"github.com/zester-io/zester/internal/names"
	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/master"
	"github.com/zester-io/zester/topology"
)

// The enrollment storm: every simulated peel enrolls at once under an
// auto-accept policy and then connects with the credentials it was issued,
// against a NATS server in operator mode and a master holding the PKI.
//
// The scenario has its own PKI, server and master (the rest of the run uses
// an open server). The request phase multiplexes the peels' exchanges over a
// few bootstrap connections (as --mode multiplexed does), so 100,000 peels
// fit; connecting "with its own credentials" needs one connection per peel,
// so EnrollPeels bounds that part. Ten thousand connections need about
// twenty thousand open files when client and server share a process, past
// the limit here, so the server runs in a child process (this executable,
// re-run with enrollChildEnv) unless EnrollServer is "inproc".
//
// Keys are made before the clock starts: a real peel makes its own, on its
// own core, once. What the clock covers is what the fleet waits for: the
// exchange (two request/replies, the master's checks, records, JWT signing)
// and the connection with the new credentials. The baseline is the same
// shape without enrollment on the same server: two bare request/replies per
// peel over the same connections, answered at once by one responder, and one
// connection per peel with a JWT issued beforehand.

// EnrollResult is the enrollment storm's measure.
type EnrollResult struct {
	Peels int `json:"peels"`
	// Connected is how many peels connected with their own credentials
	// (the first OwnConns of them; the rest only enrolled).
	OwnConns  int `json:"own_conns"`
	Connected int `json:"connected"`
	Accepted  int `json:"accepted"`
	// ReqConns is how many bootstrap connections carried the exchanges,
	// InFlight how many exchanges ran at once.
	ReqConns    int  `json:"request_conns"`
	InFlight    int  `json:"in_flight"`
	ServerChild bool `json:"server_child"`
	// AllAccepted: first hello → last JWT received; AllConnected: first
	// hello → last own-credentials connection up.
	AllAccepted  Seconds `json:"all_accepted_s"`
	AllConnected Seconds `json:"all_connected_s"`
	Rate         float64 `json:"enrollments_per_s"`
	// The baseline: 2×Peels bare request/replies; OwnConns connections with
	// JWTs issued beforehand.
	BaseReqRep  Seconds `json:"baseline_reqrep_s"`
	BaseConnect Seconds `json:"baseline_connect_s"`
	// ServerCPU is the child server's CPU time over the whole scenario
	// (0 when in process: it is in the scenario's resources then).
	ServerCPU Seconds `json:"server_cpu_s"`
}

// enrollChildEnv makes this executable run only an operator-mode server
// (the value: the PKI directory; ZESTER_LOADGEN_STORE: its store).
const enrollChildEnv = "ZESTER_LOADGEN_OPSERVER"

// maxOwnConns is how many own-credentials connections one run opens.
const maxOwnConns = 10_000

func (r *runner) enrollScenario(ctx context.Context, s *Scenario) {
	res := &EnrollResult{Peels: r.cfg.Peels, OwnConns: min(r.cfg.Peels, r.cfg.EnrollConns), InFlight: 256}
	res.ReqConns = max(1, min(100, r.cfg.Peels/100))
	s.Enroll = res
	if err := r.enrollStorm(ctx, s, res); err != nil {
		s.fail("%v", err)
	}
	s.Summary = fmt.Sprintf("%s peels accepted in %s (%s), %s connected with their own credentials after %s; baseline: %s request/replies %s, %s connections %s",
		fmtInt(int64(res.Accepted)), res.AllAccepted, fmtRate(res.Rate), fmtInt(int64(res.Connected)), res.AllConnected,
		fmtInt(int64(2*res.Peels)), res.BaseReqRep, fmtInt(int64(res.OwnConns)), res.BaseConnect)
}

func (r *runner) enrollStorm(ctx context.Context, s *Scenario, res *EnrollResult) error {
	dir, err := os.MkdirTemp(r.cfg.StoreDir, "zester-loadgen-enroll-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pkiDir := filepath.Join(dir, "pki")
	if _, err := pki.Init(pkiDir, pki.InitOptions{Partitions: r.env.partitions}); err != nil {
		return err
	}
	p, err := pki.Load(pkiDir)
	if err != nil {
		return err
	}
	r.prog.set("enrollment: starting an operator-mode server")
	url, stopServer, err := r.startOpServer(ctx, p, pkiDir, filepath.Join(dir, "nats"), res)
	if err != nil {
		return err
	}
	defer func() {
		if cpu := stopServer(); cpu > 0 {
			res.ServerCPU = Sec(cpu)
		}
	}()

	mcfg := master.DefaultConfig()
	mcfg.ID, mcfg.HTTP, mcfg.LogLevel = "lg-enroll-master", "", r.cfg.LogLevel
	mcfg.NATS.URL = config.URLs{url}
	mcfg.PKIDir, mcfg.Insecure = pkiDir, false // the master loads the PKI and its credentials from it
	mcfg.Partitions = r.env.partitions
	mcfg.Enroll.AutoAccept = []string{"enr-*"}
	m, err := master.New(mcfg, master.Options{Logger: r.log.With("master", mcfg.ID), NoHTTP: true})
	if err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(context.Background())
	exited := make(chan error, 1)
	go func() { exited <- m.Run(mctx) }()
	defer func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
		}
	}()
	if !waitUntil(ctx, 90*time.Second, m.Ready) {
		return errors.New("the enrollment master did not get ready")
	}

	r.prog.set(fmt.Sprintf("enrollment: making keys for %s peels", fmtInt(int64(res.Peels))))
	peels := make([]simEnrollee, res.Peels)
	for i := range peels {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return err
		}
		curve, _ := nkeys.CreateCurveKeys()
		cpub, _ := curve.PublicKey()
		peels[i] = simEnrollee{id: fmt.Sprintf("enr-%07d", i), kp: kp, curve: cpub}
	}
	boot, err := dialN(ctx, url, res.ReqConns, nats.UserCredentials(filepath.Join(pkiDir, pki.FileEnrollCreds)), nats.CustomInboxPrefix(names.EnrollInboxPrefix))
	if err != nil {
		return fmt.Errorf("bootstrap connections: %w", err)
	}
	defer closeAll(boot)

	// The storm: exchange, then (for the first OwnConns) connect.
	r.prog.set(fmt.Sprintf("enrollment: %s peels enroll", fmtInt(int64(res.Peels))))
	var accepted, connected atomic.Int64
	var lastAccepted, lastConnected atomic.Int64
	own := make([]*nats.Conn, res.OwnConns)
	var errMu sync.Mutex
	var firstErr error
	setErr := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for range res.InFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				pe := &peels[i]
				rep, err := enroll.Exchange(ctxTimeout(ctx, 60*time.Second), boot[i%len(boot)], pe.kp, enroll.Claim{ID: pe.id, Curve: pe.curve, Peel: "loadgen"})
				if err == nil && rep.State != enroll.StateAccepted {
					err = fmt.Errorf("%s: %s, not accepted", pe.id, rep.State)
				}
				if err != nil {
					setErr(fmt.Errorf("%s: %w", pe.id, err))
					continue
				}
				accepted.Add(1)
				lastAccepted.Store(int64(time.Since(start)))
				if i >= len(own) {
					continue
				}
				nc, err := connectOwn(url, pe.id, rep.JWT, pe.kp)
				if err != nil {
					setErr(fmt.Errorf("%s connects with its own credentials: %w", pe.id, err))
					continue
				}
				own[i] = nc
				connected.Add(1)
				lastConnected.Store(int64(time.Since(start)))
			}
		}()
	}
	for i := range peels {
		select {
		case work <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	res.Accepted, res.Connected = int(accepted.Load()), int(connected.Load())
	res.AllAccepted, res.AllConnected = Sec(time.Duration(lastAccepted.Load())), Sec(time.Duration(lastConnected.Load()))
	if res.AllAccepted > 0 {
		res.Rate = float64(res.Accepted) / res.AllAccepted.D().Seconds()
	}
	r.notePeak()
	closeAll(own)
	if firstErr != nil {
		return firstErr
	}
	if res.Accepted != res.Peels || res.Connected != res.OwnConns {
		return fmt.Errorf("%d of %d accepted, %d of %d connected", res.Accepted, res.Peels, res.Connected, res.OwnConns)
	}

	// The baseline on the same server: bare request/replies, then bare
	// connections with JWTs issued beforehand.
	r.prog.set("enrollment: baseline")
	adminConns, err := dialN(ctx, url, res.ReqConns, nats.UserCredentials(filepath.Join(pkiDir, pki.FileAdminCreds)), nats.CustomInboxPrefix(names.UserInboxPrefix("admin")))
	if err != nil {
		return err
	}
	defer closeAll(adminConns)
	resp, err := nats.Connect(url, nats.UserCredentials(p.MasterCreds))
	if err != nil {
		return err
	}
	defer resp.Close()
	answer := make([]byte, 1024) // about a JWT's size
	const baseSubj = "loadgen.enroll.baseline"
	if _, err := resp.QueueSubscribe(baseSubj, "b", func(m *nats.Msg) { m.Respond(answer) }); err != nil {
		return err
	}
	resp.Flush()
	t0 := time.Now()
	if err := parallel(ctx, res.Peels, res.InFlight, func(i int) error {
		for range 2 {
			if _, err := boot0(adminConns, i).RequestWithContext(ctxTimeout(ctx, 30*time.Second), baseSubj, answer[:200]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("baseline request/replies: %w", err)
	}
	res.BaseReqRep = Sec(time.Since(t0))
	toks := make([]string, res.OwnConns)
	for i := range toks {
		pub, _ := peels[i].kp.PublicKey()
		if toks[i], err = p.IssuePeel(pki.PeelSpec{ID: peels[i].id, Partitions: r.env.partitions}, pub, time.Hour); err != nil {
			return err
		}
	}
	base := make([]*nats.Conn, res.OwnConns)
	t0 = time.Now()
	err = parallel(ctx, res.OwnConns, res.InFlight, func(i int) error {
		nc, err := connectOwn(url, peels[i].id, toks[i], peels[i].kp)
		base[i] = nc
		return err
	})
	res.BaseConnect = Sec(time.Since(t0))
	closeAll(base)
	if err != nil {
		return fmt.Errorf("baseline connections: %w", err)
	}
	if res.ServerChild {
		s.note("the operator-mode server ran in a child process (one connection per peel for %s peels)", fmtInt(int64(res.OwnConns)))
	}
	if res.OwnConns < res.Peels {
		s.note("the first %s peels connected with their own credentials; the others only enrolled (one connection each would exceed --enroll-conns)", fmtInt(int64(res.OwnConns)))
	}
	if n := enrollAsyncErrors.Swap(0); n > 0 {
		s.note("%s asynchronous connection errors on the enrollment connections (resets and timeouts of a loaded server; each connection reconnects or was done)", fmtInt(n))
	}
	s.note("keys were made before the clock started (a real peel makes its own once, on its own core); the master ran in this process")
	return nil
}

type simEnrollee struct {
	id    string
	kp    nkeys.KeyPair
	curve string
}

// enrollAsyncErrors counts the errors nats.go reported on the enrollment
// scenario's connections after they connected.
var enrollAsyncErrors atomic.Int64

func boot0(conns []*nats.Conn, i int) *nats.Conn { return conns[i%len(conns)] }

// connectOwn connects as an enrolled peel: its JWT, its key, its inbox.
func connectOwn(url, id, tok string, kp nkeys.KeyPair) (*nats.Conn, error) {
	return dial(url, nats.Name("loadgen-enrolled "+id), nats.MaxReconnects(0), nats.Timeout(30*time.Second),
		nats.CustomInboxPrefix(names.PeelInboxPrefix(id)),
		nats.UserJWT(func() (string, error) { return tok, nil }, func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) }))
}

// dial connects as a real peel would: a handshake that fails for a reason
// other than authorization (the server, loaded by thousands of connects,
// sent its first PING before its PONG: "expected 'PONG', got 'PING'"; a
// timeout) is tried again after a jittered backoff, a few times.
func dial(url string, opts ...nats.Option) (*nats.Conn, error) {
	// Errors after the connect (a reset while the loaded server closes
	// thousands of connections) are counted for the report, not printed
	// by nats.go's default handler one line each.
	opts = append([]nats.Option{nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) { enrollAsyncErrors.Add(1) })}, opts...)
	var nc *nats.Conn
	tries := 0
	err := backoff.Retry(context.Background(), backoff.New(50*time.Millisecond, 2*time.Second), func(context.Context) error {
		c, err := nats.Connect(url, opts...)
		if err == nil {
			nc = c
			return nil
		}
		if tries++; tries == 5 || errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) {
			return backoff.Permanent(err)
		}
		return err
	})
	return nc, err
}

func dialN(ctx context.Context, url string, n int, opts ...nats.Option) ([]*nats.Conn, error) {
	out := make([]*nats.Conn, n)
	err := parallel(ctx, n, 16, func(i int) error {
		nc, err := dial(url, append([]nats.Option{nats.Name(fmt.Sprintf("loadgen-enroll-%d", i)), nats.MaxReconnects(-1)}, opts...)...)
		out[i] = nc
		return err
	})
	if err != nil {
		closeAll(out)
		return nil, err
	}
	return out, nil
}

func closeAll(conns []*nats.Conn) {
	for _, nc := range conns {
		if nc != nil {
			nc.Close()
		}
	}
}

// parallel runs fn(0..n-1) on k goroutines; the first error stops it.
func parallel(ctx context.Context, n, k int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(k, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

func ctxTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	context.AfterFunc(c, cancel)
	return c
}

// startOpServer starts the operator-mode server: in a child process unless
// configured in process. It returns the client URL and a stop function that
// reports the child's CPU time.
func (r *runner) startOpServer(ctx context.Context, p *pki.PKI, pkiDir, storeDir string, res *EnrollResult) (string, func() time.Duration, error) {
	if r.cfg.EnrollServer == EnrollServerInproc {
		var cerr error
		s, err := topology.StartServer(topology.ServerConfig{Name: "lg-enroll", Listen: "127.0.0.1:-1", StoreDir: storeDir,
			Tune: func(o *server.Options) { cerr = p.ConfigureServer(o) }})
		if err == nil {
			err = cerr
		}
		if err != nil {
			return "", nil, err
		}
		return s.ClientURL(), func() time.Duration { s.Shutdown(); return 0 }, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), enrollChildEnv+"="+pkiDir, "ZESTER_LOADGEN_STORE="+storeDir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = r.cfg.Log
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start the server child: %w", err)
	}
	stop := func() time.Duration {
		stdin.Close() // the child exits when its stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		return 0
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
				urlc <- u
			}
		}
	}()
	select {
	case u := <-urlc:
		res.ServerChild = true
		return u, stop, nil
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	stop()
	return "", nil, errors.New("the server child did not report its URL")
}

// ServeChild runs the enrollment storm's server child when this process was
// started as one, and then reports true with the exit code. Every main that
// calls Run (zester-loadgen, bench, a test binary's TestMain) calls it
// first: the storm re-runs its own executable as the child.
func ServeChild() (int, bool) {
	if os.Getenv(enrollChildEnv) == "" {
		return 0, false
	}
	return runEnrollChild(os.Stdin, os.Stdout, os.Stderr), true
}

// runEnrollChild is the child: an operator-mode server until stdin closes.
func runEnrollChild(stdin io.Reader, stdout, stderr io.Writer) int {
	p, err := pki.Load(os.Getenv(enrollChildEnv))
	if err != nil {
		fmt.Fprintln(stderr, "zester-loadgen (server child):", err)
		return 1
	}
	var cerr error
	s, err := topology.StartServer(topology.ServerConfig{Name: "lg-enroll", Listen: "127.0.0.1:-1", StoreDir: os.Getenv("ZESTER_LOADGEN_STORE"),
		Tune: func(o *server.Options) { cerr = p.ConfigureServer(o) }})
	if err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "zester-loadgen (server child):", err)
		return 1
	}
	defer s.Shutdown()
	fmt.Fprintln(stdout, "URL "+s.ClientURL())
	io.Copy(io.Discard, stdin)
	return 0
}
