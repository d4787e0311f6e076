package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/internal/redisconn"
	"github.com/voluntree/voluntree/internal/redisproc"
	"github.com/voluntree/voluntree/redisstore"
)

const adminUsage = `usage: voluntree admin <command> [flags]

commands:
  create-org     create an organization:       -id ID -name NAME [-email EMAIL]
  create-token   create an admin API token:     -org ID [-label TEXT] [-role owner|admin|viewer]
                 [-expires 720h] [-create-org NAME]
                 (prints the token once; send it as "Authorization: Bearer <token>")
  tokens         list an organization's tokens:  -org ID
  revoke-token   revoke a token at once:        -org ID -id TOKEN_ID
  login-link     print a one-time sign-in link (15 minutes): -org ID [-user USER_ID]
                 [-name NAME] [-public-url URL]; without -user it signs in as the first
                 owner, or makes a new owner NAME when the organization has none
  members        list an organization's members: -org ID
  add-page       connect a Facebook page by hand: -org ID -page PAGE_ID [-name NAME]
                 [-access-token-file FILE] (a page access token, e.g. a system user's;
                 without one the page's webhooks are received but nothing is published)
  rejected       print the webhook events refused for their own content, newest first,
                 as JSON lines: [-n 20]

Every command reads VOLUNTREE_REDIS_URL / -redis-url. Without one it uses the embedded
redis-server of the data directory (-data, VOLUNTREE_DATA_DIR): the running server's, or,
when none runs, one it starts for the command.
`

// readSecret reads a secret from a file ("-": stdin), trimmed; empty is an error.
func readSecret(path string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return "", fmt.Errorf("%s: want one token, no spaces", path)
	}
	return s, nil
}

// embeddedURLFile is where serve leaves the embedded redis-server's URL while it runs.
const embeddedURLFile = "redis.url"

func runAdmin(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
		fmt.Fprint(stdout, adminUsage)
		if len(args) == 0 {
			return usageError{errors.New("a command is required")}
		}
		return nil
	}
	env, err := newSettings(args[1:], os.LookupEnv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("admin "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "config file of KEY=value lines with the environment's keys, as serve's (env VOLUNTREE_CONFIG)")
	var redisCfg redisconn.Config
	redisFlags(fs, env, &redisCfg, "empty: the embedded one of -data")
	dataDir := fs.String("data", env.str("VOLUNTREE_DATA_DIR", "./data"), "data directory of the embedded redis-server (env VOLUNTREE_DATA_DIR)")
	prefix := fs.String("redis-prefix", env.str("VOLUNTREE_REDIS_PREFIX", redisstore.DefaultPrefix), "prefix of every Redis key (env VOLUNTREE_REDIS_PREFIX)")
	var run func(ctx context.Context, st *redisstore.Store) error
	switch args[0] {
	case "create-org":
		id := fs.String("id", "", "organization id (letters, digits, _.:-)")
		name := fs.String("name", "", "organization name")
		email := fs.String("email", "", "contact email (verified before a page is connected)")
		run = func(ctx context.Context, st *redisstore.Store) error {
			if *id == "" || strings.TrimSpace(*name) == "" {
				return usageError{errors.New("-id and -name are required")}
			}
			if err := st.CreateOrg(ctx, voluntree.Organization{ID: *id, Name: strings.TrimSpace(*name), Email: *email}); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "organization %s created\n", *id)
			return nil
		}
	case "create-token":
		org := fs.String("org", "", "organization id")
		label := fs.String("label", "", "what the token is for (shown in lists)")
		create := fs.String("create-org", "", "create the organization with this name when it does not exist")
		role := fs.String("role", "owner", "what the token may do: owner, admin or viewer")
		expires := fs.Duration("expires", 0, "lifetime (e.g. 720h); 0: never expires")
		run = func(ctx context.Context, st *redisstore.Store) error {
			if *org == "" {
				return usageError{errors.New("-org is required")}
			}
			if *create != "" {
				err := st.CreateOrg(ctx, voluntree.Organization{ID: *org, Name: *create})
				if err != nil && voluntree.ErrorCode(err) != voluntree.ECONFLICT {
					return err
				}
			}
			r, err := voluntree.ParseRole("-role", *role)
			if err != nil {
				return usageError{err}
			}
			if *expires < 0 {
				return usageError{fmt.Errorf("-expires must not be negative, got %s", *expires)}
			}
			token, _, err := st.CreateAdminToken(ctx, *org, redisstore.TokenOptions{Label: *label, Role: r, TTL: *expires})
			if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
				return fmt.Errorf("organization %q does not exist (create it with -create-org NAME or `voluntree admin create-org`)", *org)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, token)
			return nil
		}
	case "tokens":
		org := fs.String("org", "", "organization id")
		run = func(ctx context.Context, st *redisstore.Store) error {
			if *org == "" {
				return usageError{errors.New("-org is required")}
			}
			ts, err := st.AdminTokens(ctx, *org)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROLE\tHINT\tLABEL\tCREATED\tEXPIRES")
			for _, t := range ts {
				exp := "never"
				if !t.ExpiresAt.IsZero() {
					exp = t.ExpiresAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\n", t.ID, t.Role, t.Hint, t.Label, t.CreatedAt.Format(time.RFC3339), exp)
			}
			return tw.Flush()
		}
	case "revoke-token":
		org := fs.String("org", "", "organization id")
		id := fs.String("id", "", "the token's id (voluntree admin tokens)")
		run = func(ctx context.Context, st *redisstore.Store) error {
			if *org == "" || *id == "" {
				return usageError{errors.New("-org and -id are required")}
			}
			if _, err := st.RevokeAdminToken(ctx, *org, *id); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "token %s revoked\n", *id)
			return nil
		}
	case "members":
		org := fs.String("org", "", "organization id")
		run = func(ctx context.Context, st *redisstore.Store) error {
			if *org == "" {
				return usageError{errors.New("-org is required")}
			}
			if _, err := st.Org(ctx, *org); err != nil {
				return err
			}
			ms, err := st.Members(ctx, *org)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tROLE\tNAME\tEMAIL\tJOINED")
			for _, m := range ms {
				var name, email string
				if m.User != nil {
					name, email = m.User.Name, m.User.Email
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.UserID, m.Role, name, email, m.JoinedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		}
	case "login-link":
		org := fs.String("org", "", "organization id")
		user := fs.String("user", "", "sign in as this member (default: the first owner)")
		name := fs.String("name", "Owner", "name of the owner made when the organization has none")
		public := fs.String("public-url", env.str("VOLUNTREE_PUBLIC_URL", "http://localhost:8080"), "where browsers reach the server (env VOLUNTREE_PUBLIC_URL)")
		run = func(ctx context.Context, st *redisstore.Store) error {
			if *org == "" {
				return usageError{errors.New("-org is required")}
			}
			link, err := loginLinkURL(ctx, st, *public, *org, *user, *name)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, link)
			return nil
		}
	case "add-page":
		org := fs.String("org", "", "organization id")
		page := fs.String("page", "", "Facebook page id")
		name := fs.String("name", "", "page name (default: the page id)")
		tokenFile := fs.String("access-token-file", "", "file holding the page access token (- for stdin)")
		run = func(ctx context.Context, st *redisstore.Store) error {
			if *org == "" || *page == "" {
				return usageError{errors.New("-org and -page are required")}
			}
			if !voluntree.ValidID(*page) {
				return usageError{fmt.Errorf("-page %q is not a page id (letters, digits, _.:-, at most 64)", *page)}
			}
			pg := voluntree.Page{ID: *page, OrgID: *org, Name: strings.TrimSpace(*name)}
			if pg.Name == "" {
				pg.Name = pg.ID
			}
			if *tokenFile != "" {
				tok, err := readSecret(*tokenFile, stdin)
				if err != nil {
					return err
				}
				pg.AccessToken = tok
			}
			if _, err := st.Org(ctx, *org); err != nil {
				if voluntree.ErrorCode(err) == voluntree.ENOTFOUND {
					return fmt.Errorf("organization %q does not exist (create it with `voluntree admin create-org`)", *org)
				}
				return err
			}
			if err := st.SavePage(ctx, pg); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "page %s connected to organization %s\n", pg.ID, *org)
			return nil
		}
	case "rejected":
		n := fs.Int("n", 20, "how many (newest first), 1 to 10000")
		run = func(ctx context.Context, st *redisstore.Store) error {
			if *n < 1 || *n > 10000 {
				return usageError{fmt.Errorf("-n must be between 1 and 10000, got %d", *n)}
			}
			rs, err := st.RejectedEvents(ctx, int64(*n))
			if err != nil {
				return err
			}
			enc := json.NewEncoder(stdout)
			enc.SetEscapeHTML(false)
			for _, r := range rs {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return nil
		}
	default:
		fmt.Fprint(stderr, adminUsage)
		return usageError{fmt.Errorf("unknown admin command %q", args[0])}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	if err := env.checkStoreCommand(fs, redisCfg, modelKeys()); err != nil {
		return err
	}
	return runOnStore(ctx, redisCfg, *dataDir, *prefix, 30*time.Second, run)
}

// runOnStore runs an admin or model command on the store of redisCfg (or the embedded Redis
// of dataDir) under prefix, within timeout. A domain error's message is for the user.
func runOnStore(ctx context.Context, redisCfg redisconn.Config, dataDir, prefix string, timeout time.Duration,
	run func(ctx context.Context, st *redisstore.Store) error) error {
	return runOnStoreOf(ctx, redisCfg, dataDir, prefix, timeout, true, run)
}

// runOnStoreOf is runOnStore; checkLayout false skips the key layout's check (migrate).
func runOnStoreOf(ctx context.Context, redisCfg redisconn.Config, dataDir, prefix string, timeout time.Duration,
	checkLayout bool, run func(ctx context.Context, st *redisstore.Store) error) error {
	rdb, stop, err := adminRedis(ctx, redisCfg, dataDir)
	if err != nil {
		return err
	}
	defer stop()
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix})
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if checkLayout {
		if err := st.CheckLayout(ctx); err != nil {
			return err
		}
	}
	err = run(ctx, st)
	var ue usageError
	if err != nil && !errors.As(err, &ue) && voluntree.ErrorCode(err) != voluntree.EINTERNAL {
		return errors.New(voluntree.ErrorMessage(err))
	}
	return err
}

// adminRedis connects to the Redis an admin command works on: the URL given, else the running
// server's embedded redis-server, else one started on the data directory for the command.
func adminRedis(ctx context.Context, cfg redisconn.Config, dataDir string) (redis.UniversalClient, func(), error) {
	if cfg.URL != "" {
		conns, err := redisconn.Open(cfg)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("VOLUNTREE_REDIS_URL: %w", err)}
		}
		if err := conns.Primary.Ping(ctx).Err(); err != nil {
			conns.Close()
			return nil, nil, fmt.Errorf("redis (%s): %w", conns.Target, err)
		}
		return conns.Primary, func() { conns.Close() }, nil
	}
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, nil, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, embeddedURLFile)); err == nil {
		if opts, err := redis.ParseURL(strings.TrimSpace(string(b))); err == nil {
			rdb := redis.NewClient(opts)
			// A stale file may name a port another Redis now has: check it serves this directory.
			got, err := rdb.ConfigGet(ctx, "dir").Result()
			if err == nil && got["dir"] == dir {
				return rdb, func() { rdb.Close() }, nil
			}
			rdb.Close()
		}
	}
	srv, err := redisproc.Start(ctx, redisproc.Config{Dir: dir, AppendOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("embedded redis: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	return rdb, func() { rdb.Close(); srv.Stop() }, nil
}

// writeEmbeddedURL tells admin commands where the running server's embedded Redis is; the
// returned function removes the file.
func writeEmbeddedURL(dataDir, url string) (func(), error) {
	p := filepath.Join(dataDir, embeddedURLFile)
	if err := os.WriteFile(p, []byte(url+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	return func() { os.Remove(p) }, nil
}

// loginLinkURL issues a one-time sign-in link for org (redisstore.LoginLinkFor) and returns
// its URL under publicURL.
func loginLinkURL(ctx context.Context, st *redisstore.Store, publicURL, org, user, name string) (string, error) {
	token, _, err := st.LoginLinkFor(ctx, org, user, name, httpapi.LoginLinkTTL)
	if voluntree.ErrorCode(err) == voluntree.ENOTFOUND && user == "" {
		return "", fmt.Errorf("organization %q does not exist (create it with `voluntree admin create-org`)", org)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(publicURL, "/") + "/auth/link?token=" + url.QueryEscape(token), nil
}
