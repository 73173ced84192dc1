package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/zester-io/zester/internal/pki"
	"github.com/zester-io/zester/internal/settings"
	"github.com/zester-io/zester/internal/target"
)

func (a *app) settingsCmd() *cobra.Command {
	return group("settings", "Per-peel settings (Salt's pillar) from the settings tree", a.settingsRenderCmd(), a.settingsRefreshCmd())
}

func (a *app) settingsRenderCmd() *cobra.Command {
	var dir, id, factsFile, pkiDir, basketFile string
	var reveal, asJSON bool
	c := &cobra.Command{
		Use:   "render --id ID [--settings DIR] [--facts FILE] [--reveal] [--json]",
		Short: "Compile a settings tree for one peel, locally (no NATS)",
		Long: `Compile the settings tree for the peel ID with the facts in --facts (a JSON or
YAML document, as zester facts prints; - for stdin; none: no facts) and print
the merged settings as YAML, or JSON with --json. It is what the masters do
for each peel, run on a checkout, so a change can be tried before it is
pushed. Secrets show as <secret>; --reveal opens them with master.xk from
--pki-dir and prints them in plaintext. --basket FILE gives {{ basket }}
data: a map of peel id to a map of entry name to value (its targets match
peel ids only: the file has no facts).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return withCode(ExitError, errors.New("settings render: --id is required"))
			}
			facts, err := readFacts(factsFile, cmd.InOrStdin())
			if err != nil {
				return withCode(ExitError, err)
			}
			o := settings.Options{Context: cmd.Context()}
			if reveal {
				kp, err := pki.LoadMasterCurve(pkiDir)
				if err != nil {
					return withCode(ExitError, fmt.Errorf("settings render --reveal: %w", err))
				}
				defer kp.Wipe()
				o.Secret = settings.Opener(kp)
			}
			if basketFile != "" {
				if o.Basket, err = basketFromFile(basketFile); err != nil {
					return withCode(ExitError, err)
				}
			}
			res, err := settings.Compile(os.DirFS(dir), id, facts, o)
			if err != nil {
				return withCode(ExitError, err)
			}
			tree := res.Masked()
			if reveal {
				tree = res.Revealed()
			}
			secrets := res.SecretPaths()
			if asJSON {
				files := res.Files
				if files == nil {
					files = []string{}
				}
				if secrets == nil {
					secrets = []string{}
				}
				enc := json.NewEncoder(a.out)
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"id": id, "files": files, "secrets": secrets, "settings": tree})
			}
			fmt.Fprintf(a.out, "# %s: %s\n", id, describeFiles(res.Files))
			if len(secrets) > 0 {
				state := "masked"
				if reveal {
					state = "REVEALED"
				}
				fmt.Fprintf(a.out, "# secrets (%s): %s\n", state, strings.Join(secrets, ", "))
			}
			if len(tree) == 0 {
				fmt.Fprintln(a.out, "{}")
				return nil
			}
			b, err := yaml.MarshalWithOptions(tree, yaml.IndentSequence(true))
			if err != nil {
				return withCode(ExitError, err)
			}
			_, err = a.out.Write(b)
			return err
		},
	}
	c.Flags().StringVar(&dir, "settings", DefaultSettingsDir, "settings tree (with top.zy)")
	c.Flags().StringVar(&id, "id", "", "peel id")
	c.Flags().StringVar(&factsFile, "facts", "", "facts document (JSON or YAML; - for stdin)")
	c.Flags().BoolVar(&reveal, "reveal", false, "open secrets with master.xk and print them")
	c.Flags().StringVar(&pkiDir, "pki-dir", pki.DefaultDir, "PKI directory holding master.xk (for --reveal)")
	c.Flags().StringVar(&basketFile, "basket", "", "basket data for {{ basket }}: peel id → entry name → value")
	jsonFlag(c, &asJSON, "print JSON: id, files, secret paths and settings")
	return c
}

func describeFiles(files []string) string {
	if len(files) == 0 {
		return "no settings file applies"
	}
	return strings.Join(files, ", ")
}

// readFacts reads a facts document: JSON or YAML, a map at the top.
func readFacts(file string, stdin io.Reader) (map[string]any, error) {
	if file == "" {
		return map[string]any{}, nil
	}
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("--facts: %w", err)
	}
	var facts map[string]any
	if err := json.Unmarshal(b, &facts); err == nil {
		return facts, nil
	}
	if err := yaml.Unmarshal(b, &facts); err != nil {
		return nil, fmt.Errorf("--facts %s: neither JSON nor YAML: %s", file, yaml.FormatError(err, false, true))
	}
	if facts == nil {
		facts = map[string]any{}
	}
	return facts, nil
}

// basketFromFile serves {{ basket TARGET NAME }} from a file of
// peel id → name → value; targets are matched against the ids alone.
func basketFromFile(file string) (func(string, string) (map[string]any, error), error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--basket: %w", err)
	}
	var data map[string]map[string]any
	if err := yaml.Unmarshal(b, &data); err != nil {
		return nil, fmt.Errorf("--basket %s: want peel id → entry name → value: %s", file, yaml.FormatError(err, false, true))
	}
	ids := make([]string, 0, len(data))
	for id := range data {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return func(tgt, name string) (map[string]any, error) {
		e, err := target.Parse(target.KindCompound, tgt, target.Options{})
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		for _, id := range ids {
			if !e.Match(&target.MapSubject{PeelID: id}) {
				continue
			}
			if v, ok := data[id][name]; ok {
				out[id] = v
			}
		}
		return out, nil
	}, nil
}
