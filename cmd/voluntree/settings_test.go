package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "voluntree.env")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestSettingsPrecedence(t *testing.T) {
	file := writeConfig(t, `# a comment
VOLUNTREE_CLAIM_IDLE=7s
VOLUNTREE_POLL_INTERVAL = 2m
export VOLUNTREE_NODE="node from file"
VOLUNTREE_TRUSTED_PROXIES='10.0.0.0/8'
VOLUNTREE_REDIS_POOL_SIZE=33
`)
	env := map[string]string{"VOLUNTREE_POLL_INTERVAL": "3m", "VOLUNTREE_REDIS_POOL_SIZE": ""}
	s, err := newSettings([]string{"-config", file, "-node", "from-flag"}, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseServeFlagsWith(s, []string{"-config", file, "-node", "from-flag"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ingest.ClaimIdle != 7*time.Second {
		t.Errorf("claim idle %s, want the file's 7s", c.Ingest.ClaimIdle)
	}
	if c.PollInterval != 3*time.Minute {
		t.Errorf("poll interval %s, want the environment's 3m over the file's", c.PollInterval)
	}
	if c.Node != "from-flag" {
		t.Errorf("node %q, want the flag's over the file's", c.Node)
	}
	if c.TrustedProxies != "10.0.0.0/8" {
		t.Errorf("trusted proxies %q, want the file's unquoted", c.TrustedProxies)
	}
	if c.Redis.PoolSize != 33 {
		t.Errorf("pool size %d, want the file's 33 (an empty variable is unset)", c.Redis.PoolSize)
	}
	if c.SMTPURL != "" || c.Batcher.MaxBatch == 0 {
		t.Errorf("defaults lost: %+v", c)
	}

	// -config after a flag's value is found too.
	late := []string{"-addr", "127.0.0.1:0", "-config", file}
	s, err = newSettings(late, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := parseServeFlagsWith(s, late, io.Discard); err != nil || c.Node != "node from file" {
		t.Fatalf("with -config after another flag: node %q, %v", c.Node, err)
	}

	// VOLUNTREE_CONFIG names the file when -config does not.
	s, err = newSettings(nil, envOf(map[string]string{"VOLUNTREE_CONFIG": file}))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := parseServeFlagsWith(s, nil, io.Discard); err != nil || c.Node != "node from file" {
		t.Fatalf("with VOLUNTREE_CONFIG: node %q, %v", c.Node, err)
	}
}

func TestSettingsErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ file, env, want string }{
		{file: "VOLUNTREE_CLAIM_IDLE=soon\n", want: `VOLUNTREE_CLAIM_IDLE="soon" (` + "FILE:1): not a duration"},
		{file: "\nVOLUNTREE_CLAIM_IDEL=5s\n", want: "FILE:2: unknown key VOLUNTREE_CLAIM_IDEL"},
		{file: "VOLUNTREE_REDIS_POOL_SIZE=many\n", want: `VOLUNTREE_REDIS_POOL_SIZE="many" (FILE:1): not a whole number`},
		{file: "VOLUNTREE_ACTOR_METRICS=yes\n", want: "want on or off"},
		{file: "REDIS_URL=redis://x:1\n", want: `FILE:1: "REDIS_URL": a key is an environment variable's name`},
		{file: "VOLUNTREE_NODE\n", want: "FILE:1: want KEY=value"},
		{file: "VOLUNTREE_NODE=a\nVOLUNTREE_NODE=b\n", want: "FILE:2: VOLUNTREE_NODE is already set on line 1"},
		{file: "VOLUNTREE_NODE=\"a\n", want: "unterminated quote"},
		{file: "VOLUNTREE_CONFIG=/etc/x\n", want: "cannot be set in a config file"},
		{env: "soon", want: `VOLUNTREE_CLAIM_IDLE="soon" (the environment): not a duration`},
		{file: "VOLUNTREE_REDIS_URL=redis-sentinel://s1:26379\n", want: "master's name"},
		{file: "VOLUNTREE_REDIS_URL=postgres://db\n", want: "unknown scheme"},
		{file: "VOLUNTREE_REDIS_REPLICA_READS=on\n", want: "-redis-replica-reads needs a Sentinel or Cluster"},
		{file: "VOLUNTREE_REDIS_READ_TIMEOUT=-1s\n", want: "must be 0 (the default) or positive"},
		{file: "VOLUNTREE_TORCH_THREADS=two\n", want: `VOLUNTREE_TORCH_THREADS="two"`},
	} {
		path := writeConfig(t, tc.file)
		env := map[string]string{}
		if tc.env != "" {
			env["VOLUNTREE_CLAIM_IDLE"] = tc.env
		}
		args := []string{"-config=" + path}
		_, err := func() (serveConfig, error) {
			s, err := newSettings(args, envOf(env))
			if err != nil {
				return serveConfig{}, err
			}
			return parseServeFlagsWith(s, args, io.Discard)
		}()
		want := strings.ReplaceAll(tc.want, "FILE", path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("file %q env %q: error %v, want one with %q", tc.file, tc.env, err, want)
		}
	}
	if _, err := newSettings([]string{"-config", filepath.Join(t.TempDir(), "missing")}, envOf(nil)); err == nil {
		t.Error("a missing config file is not an error")
	}
	if _, err := newSettings([]string{"-config"}, envOf(nil)); err == nil {
		t.Error("-config without a value is not an error")
	}
}

// An admin command reads the file serve reads: serve's keys in it are not unknown to it, and
// a key neither knows is.
func TestAdminSharesServesConfigFile(t *testing.T) {
	t.Setenv("VOLUNTREE_REDIS_URL", "")
	dir := t.TempDir()
	file := writeConfig(t, "VOLUNTREE_DATA_DIR="+dir+"\nVOLUNTREE_CLAIM_IDLE=7s\nVOLUNTREE_SMTP_URL=smtp://mail:25\n")
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code := run(ctx, []string{"admin", "create-org", "-config", file, "-id", "org1", "-name", "One"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("admin create-org with serve's keys in the file: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "organization org1 created") {
		t.Fatalf("output %q", out.String())
	}
	bad := writeConfig(t, "VOLUNTREE_DATA_DIR="+dir+"\nVOLUNTREE_NOPE=1\n")
	errOut.Reset()
	if code := run(ctx, []string{"admin", "create-org", "-config", bad, "-id", "org2", "-name", "Two"}, nil, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), bad+":2: unknown key VOLUNTREE_NOPE") {
		t.Fatalf("an unknown key: exit %d, %q", code, errOut.String())
	}
}

// Every key a command reads is documented in the README's configuration table.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := serveKeys()
	if !keys["VOLUNTREE_GITHUB_CLIENT_SECRET"] || !keys["VOLUNTREE_REDIS_URL"] || len(keys) < 40 {
		t.Fatalf("serve's keys are not all collected: %v", keys)
	}
	for k := range modelKeys() {
		keys[k] = true
	}
	var missing []string
	for k := range keys {
		if !strings.Contains(string(readme), "`"+k+"`") {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("README.md does not document %s", strings.Join(missing, ", "))
	}
}

// A config file is input from outside: whatever it holds is a clear error or settings, and
// a parsed file's values are never lost or invented.
func FuzzParseConfigFile(f *testing.F) {
	for _, s := range []string{"VOLUNTREE_NODE=a\n", "# c\n\nexport VOLUNTREE_X=\"q\\\"\"\n", "VOLUNTREE_A='x'\nVOLUNTREE_A=y",
		"=\n", "VOLUNTREE_\"=\"", "VOLUNTREE_N=\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseConfigFile("f", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		for k, v := range m {
			if !strings.HasPrefix(k, "VOLUNTREE_") || v.line < 1 || strings.ContainsAny(k, " \t=#\"'") {
				t.Fatalf("key %q at line %d", k, v.line)
			}
		}
	})
}
