package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/settings"
)

// DefaultSettingsDir is where the masters read the settings tree (the
// seed's path), and the default of --settings.
const DefaultSettingsDir = "/srv/zester/settings"

func (a *app) secretsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "secrets",
		Short: "Secret tokens for settings files: encrypt, rotate the masters' curve key",
		Long: `A secret is kept in a settings file as a token sealed to the masters' curve
key (master.xk in the PKI directory): {{ secret "zs1:…" }}. Only the masters
open it, in memory, while rendering; docs/settings.md has the workflow.`,
	}
	c.AddCommand(a.secretsEncryptCmd(), a.secretsPublicKeyCmd(), a.secretsKeygenCmd(), a.secretsRotateCmd())
	return c
}

// recipient is the curve public key tokens are sealed to: --key, or the one
// of master.xk in the PKI directory.
func recipient(key, pkiDir string) (string, error) {
	if key != "" {
		if _, err := settings.Fingerprint(key); err != nil {
			return "", fmt.Errorf("--key: %w (want the masters' curve public key, X…: zester secrets public-key prints it)", err)
		}
		return key, nil
	}
	kp, err := pki.LoadMasterCurve(pkiDir)
	if err != nil {
		return "", fmt.Errorf("%w (or give the masters' public key with --key)", err)
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

func (a *app) secretsEncryptCmd() *cobra.Command {
	var pkiDir, key string
	var raw bool
	c := &cobra.Command{
		Use:   "encrypt [--pki-dir DIR | --key XPUB] < value",
		Short: "Seal a value read on stdin to the masters' curve key; print the token",
		Long: `Read a value on stdin and print a token sealed to the masters' curve public
key, to use in a settings file as {{ secret "TOKEN" }}. The key is the one of
master.xk in --pki-dir, or --key (zester secrets public-key prints it), so an
operator without the masters' seed can encrypt. One trailing newline is
dropped (echo adds one) unless --raw. From a terminal the value is read
without echo, up to the end of the line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := recipient(key, pkiDir)
			if err != nil {
				return withCode(ExitError, err)
			}
			val, err := readSecret(cmd.InOrStdin(), a.errOut)
			if err != nil {
				return withCode(ExitError, err)
			}
			if !raw {
				val = bytes.TrimSuffix(val, []byte("\n"))
				val = bytes.TrimSuffix(val, []byte("\r"))
			}
			if len(val) == 0 {
				return withCode(ExitError, errors.New("encrypt: no value on stdin"))
			}
			tok, err := settings.Seal(pub, val)
			clear(val)
			if err != nil {
				return withCode(ExitError, fmt.Errorf("encrypt: %w", err))
			}
			fmt.Fprintln(a.out, tok)
			return nil
		},
	}
	c.Flags().StringVar(&pkiDir, "pki-dir", pki.DefaultDir, "PKI directory holding master.xk")
	c.Flags().StringVar(&key, "key", "", "the masters' curve public key (X…) instead of reading master.xk")
	c.Flags().BoolVar(&raw, "raw", false, "keep a trailing newline")
	return c
}

// readSecret reads the value: without echo from a terminal, else all of r.
func readSecret(r io.Reader, prompt io.Writer) ([]byte, error) {
	if f, ok := r.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "value (not shown): ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, fmt.Errorf("encrypt: read the terminal: %w", err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, settings.MaxSecret+2))
	if err != nil {
		return nil, fmt.Errorf("encrypt: read stdin: %w", err)
	}
	if len(b) > settings.MaxSecret+1 {
		return nil, fmt.Errorf("encrypt: value over %d bytes (a secret token is for passwords and keys, not files)", settings.MaxSecret)
	}
	return b, nil
}

func (a *app) secretsPublicKeyCmd() *cobra.Command {
	var pkiDir string
	c := command("public-key [--pki-dir DIR]", "Print the masters' curve public key (for encrypt --key) and its fingerprint", cobra.NoArgs, func(*cobra.Command, []string) error {
		pub, err := recipient("", pkiDir)
		if err != nil {
			return withCode(ExitError, err)
		}
		fp, _ := settings.Fingerprint(pub)
		fmt.Fprintf(a.out, "%s\nfingerprint %s\n", pub, fp)
		return nil
	})
	c.Flags().StringVar(&pkiDir, "pki-dir", pki.DefaultDir, "PKI directory holding master.xk")
	return c
}

func (a *app) secretsKeygenCmd() *cobra.Command {
	var out string
	c := command("keygen --out FILE", "Create a new curve key (the next master.xk) and print its public key", cobra.NoArgs, func(*cobra.Command, []string) error {
		if out == "" {
			return withCode(ExitError, errors.New("keygen: --out FILE is required"))
		}
		pub, err := pki.CreateCurveSeed(out)
		if err != nil {
			return withCode(ExitError, fmt.Errorf("keygen: %w", err))
		}
		fp, _ := settings.Fingerprint(pub)
		fmt.Fprintf(a.out, "%s\nfingerprint %s\nwrote the seed to %s (0600)\n", pub, fp, out)
		return nil
	})
	c.Flags().StringVar(&out, "out", "", "file to write the new seed to (refused if it exists)")
	return c
}

// newKeyPub reads --new-key: a curve public key, or a file with a seed or
// a public key in it.
func newKeyPub(v string) (string, error) {
	if _, err := settings.Fingerprint(v); err == nil {
		return v, nil
	}
	b, err := os.ReadFile(v)
	if err != nil {
		return "", fmt.Errorf("--new-key %q: not a curve public key (X…), and %w", v, err)
	}
	s := strings.TrimSpace(string(b))
	if _, err := settings.Fingerprint(s); err == nil {
		return s, nil
	}
	kp, err := pki.ReadCurveSeed(v)
	if err != nil {
		return "", fmt.Errorf("--new-key: %w", err)
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

func (a *app) secretsRotateCmd() *cobra.Command {
	var dir, pkiDir, newKey string
	c := &cobra.Command{
		Use:   "rotate-key --settings DIR --new-key KEY [--pki-dir DIR]",
		Short: "Re-seal every token in a settings tree from the current masters' key to a new one",
		Long: `Open every token in the .zy files of the settings tree with the current
masters' curve key (master.xk in --pki-dir) and seal it again to --new-key: a
curve public key (X…), or a file holding the new seed or public key
(zester secrets keygen makes one). Every token is opened before any file is
written; each file is replaced atomically. Tokens already sealed to the new
key are left alone, so an interrupted run is finished by running it again.
Then commit the tree and install the new seed as master.xk on every master.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if newKey == "" {
				return withCode(ExitError, errors.New("rotate-key: --new-key is required"))
			}
			pub, err := newKeyPub(newKey)
			if err != nil {
				return withCode(ExitError, fmt.Errorf("rotate-key: %w", err))
			}
			old, err := pki.LoadMasterCurve(pkiDir)
			if err != nil {
				return withCode(ExitError, fmt.Errorf("rotate-key: the current key: %w", err))
			}
			defer old.Wipe()
			rep, err := settings.RotateKey(dir, old, pub)
			if rep != nil {
				a.printRotated(rep, pub)
			}
			if err != nil {
				return withCode(ExitError, err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&dir, "settings", DefaultSettingsDir, "settings tree")
	c.Flags().StringVar(&pkiDir, "pki-dir", pki.DefaultDir, "PKI directory holding the current master.xk")
	c.Flags().StringVar(&newKey, "new-key", "", "the new curve public key, or a file with its seed or public key")
	return c
}

func (a *app) printRotated(rep *settings.RotateReport, pub string) {
	n := 0
	for _, f := range rep.Changed {
		n += f.Tokens
	}
	fp, _ := settings.Fingerprint(pub)
	fmt.Fprintf(a.out, "re-sealed %d tokens in %d files to key %s\n", n, len(rep.Changed), fp)
	for _, f := range rep.Changed {
		fmt.Fprintf(a.out, "  %s\t%d\n", f.Path, f.Tokens)
	}
	if rep.Current > 0 {
		fmt.Fprintf(a.out, "%d tokens were already sealed to the new key\n", rep.Current)
	}
}
