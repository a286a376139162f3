package config_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/scalable-chat-go/server/config"
)

// repoRoot is the repository's root, from this package's directory.
var repoRoot = filepath.Join("..", "..")

// composeEnv is what the checks interpolate compose files with: the two
// passwords compose.yaml requires from .env, and nothing of the caller's
// environment, so the result does not depend on who runs it.
var composeEnv = []string{"POSTGRES_PASSWORD=compose-test", "REDIS_PASSWORD=compose-test"}

// loadCompose loads file as `docker compose` does, with compose-spec's own
// loader: interpolation, merge keys, the specification's schema, paths
// resolved against the repository's root.
func loadCompose(t *testing.T, file string) (*types.Project, error) {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(composeEnv),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

// isChatServer reports whether s is a chat-server node: built from server/.
func isChatServer(s types.ServiceConfig) bool {
	server, _ := filepath.Abs(filepath.Join(repoRoot, "server"))
	return s.Build != nil && filepath.Clean(s.Build.Context) == server
}

// checkCompose returns what is wrong with file: it does not load, a
// chat-server service sets a variable the server does not read, a build
// context or Dockerfile does not exist, a bind-mounted file does not
// exist.
func checkCompose(t *testing.T, file string) []string {
	t.Helper()
	project, err := loadCompose(t, file)
	if err != nil {
		return []string{fmt.Sprintf("%s does not load: %v", file, err)}
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(project.Services)) {
		s := project.Services[name]
		if b := s.Build; b != nil {
			if st, err := os.Stat(b.Context); err != nil || !st.IsDir() {
				problems = append(problems, fmt.Sprintf("%s: build context %s is not a directory", name, b.Context))
			} else if df := dockerfile(b); df != "" {
				if _, err := os.Stat(df); err != nil {
					problems = append(problems, fmt.Sprintf("%s: Dockerfile %s does not exist", name, df))
				}
			}
		}
		if isChatServer(s) {
			for _, v := range slices.Sorted(maps.Keys(s.Environment)) {
				if !config.Known(v) {
					problems = append(problems, fmt.Sprintf("%s: %s is not a setting of the server (server/%s)", name, v, config.ReferencePath))
				}
			}
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				problems = append(problems, fmt.Sprintf("%s: mounted %s does not exist", name, v.Source))
			}
		}
	}
	return problems
}

func dockerfile(b *types.BuildConfig) string {
	if b.DockerfileInline != "" {
		return ""
	}
	df := b.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	if !filepath.IsAbs(df) {
		df = filepath.Join(b.Context, df)
	}
	return df
}

// compose.yaml loads as compose loads it, its chat nodes set only
// variables the server reads, and what it builds and mounts exists. No
// Docker engine runs here: this is the check the repository can have.
func TestComposeFile(t *testing.T) {
	file := filepath.Join(repoRoot, "compose.yaml")
	if p := checkCompose(t, file); len(p) > 0 {
		t.Fatalf("compose.yaml:\n  %s", strings.Join(p, "\n  "))
	}
	// The chat nodes were found, and their variables checked.
	project, err := loadCompose(t, file)
	if err != nil {
		t.Fatal(err)
	}
	nodes := 0
	for _, s := range project.Services {
		if isChatServer(s) {
			nodes++
			if !slices.Contains(slices.Collect(maps.Keys(s.Environment)), "KAFKA_BROKERS") {
				t.Errorf("%s: no KAFKA_BROKERS among %v", s.Name, slices.Sorted(maps.Keys(s.Environment)))
			}
		}
	}
	if nodes != 3 {
		t.Fatalf("%d chat-server services (built from server/) in compose.yaml; want 3", nodes)
	}
}

// Each fault the check is for is found, in a file that has it.
func TestComposeCheckFindsFaults(t *testing.T) {
	for file, want := range map[string]string{
		"unparsable.yaml":         "does not load",
		"not-compose.yaml":        "does not load",
		"unset-password.yaml":     "does not load",
		"unknown-variable.yaml":   "chat: MAX_CONECTIONS is not a setting of the server",
		"missing-context.yaml":    "web: build context",
		"missing-dockerfile.yaml": "chat: Dockerfile",
		"missing-mount.yaml":      "lb: mounted",
	} {
		t.Run(file, func(t *testing.T) {
			p := checkCompose(t, filepath.Join("testdata", "compose", file))
			t.Log(p)
			if len(p) != 1 || !strings.Contains(p[0], want) {
				t.Fatalf("problems %q; want one saying %q", p, want)
			}
		})
	}
}
