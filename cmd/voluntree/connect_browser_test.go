package main

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestPageShowsOrganizationPanelInABrowser loads the dashboard in headless Chromium with an
// admin token in the URL fragment and the outcome of a Facebook login in the query, against
// serve without SMTP (the outbox) and without a Facebook app (no login): the Organization
// card shows the organization, the pending verification, the outbox email and the missing
// Facebook settings; the banner shows the outcome; the token is nowhere in the DOM.
func TestPageShowsOrganizationPanelInABrowser(t *testing.T) {
	browser := requireChromium(t)
	const prefix = "e2e-panel"
	code, out, errOut := runCLI(t, "", "admin", "create-token", "-org", "panel", "-create-org", "Panel Org",
		"-redis-url", redisSrv.URL(t), "-redis-prefix", prefix)
	if code != 0 || !strings.HasPrefix(out, "vt_") {
		t.Fatalf("admin create-token: exit %d, %q %q", code, out, errOut)
	}
	e := &publishEnv{token: strings.TrimSpace(out)}
	n := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX="+prefix, "VOLUNTREE_MAIL_OUTBOX=on")

	status, me := e.api(t, n, "GET", "/api/v1/me", nil)
	features, _ := me["features"].(map[string]any)
	if status != 200 || features["outbox"] != true || features["facebook_login"] != false {
		t.Fatalf("GET /me: %d %v", status, me)
	}
	if status, body := e.api(t, n, "POST", "/api/v1/me/email", map[string]string{"email": "admin@panel.example"}); status != 202 {
		t.Fatalf("send code: %d %v", status, body)
	}
	var subject string
	waitRedis(t, func() bool {
		_, box := e.api(t, n, "GET", "/api/v1/outbox", nil)
		items, _ := box["items"].([]any)
		if len(items) == 0 {
			return false
		}
		m, _ := items[0].(map[string]any)
		subject, _ = m["subject"].(string)
		return m["to"] == "admin@panel.example"
	}, "the verification email in the outbox")
	if !strings.Contains(subject, "is your Voluntree verification code") {
		t.Fatalf("outbox subject %q", subject)
	}

	page := n.base + "/?facebook=connected&pages=1&message=" + url.PathEscape("Connected River page.") +
		"#token=" + e.token
	dom := renderedDOM(t, browser, page)
	for _, want := range []string{
		`id="org"`,
		"Code sent to admin@panel.example", // GET /me/email: the pending verification
		subject,                            // GET /outbox
		"Connected River page.",            // the login's outcome, from the query
		`class="notice ok"`,                // shown as a success
		"VOLUNTREE_FB_APP_ID",              // no Facebook Login on this server
		`class="intent interested"`,        // the playground still runs
	} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	// GET /me with the token from the fragment (the name is in the outbox email too).
	if !regexp.MustCompile(`id="org-name"[^>]*>Panel Org</span>`).Match(dom) {
		t.Errorf("rendered page lacks the organization's name")
	}
	// The card rendered with the token, not the token form; the note about the Facebook app is
	// shown instead of the connect button; the outbox section is shown.
	for _, c := range []struct {
		id     string
		hidden bool
	}{{"token-form", true}, {"org-body", false}, {"org-email", false}, {"org-outbox", false},
		{"connect-box", true}, {"fb-unconfigured", false}} {
		if tag, hidden := elementTag(dom, c.id); tag == nil || hidden != c.hidden {
			t.Errorf("#%s: hidden %v, want %v: %s", c.id, hidden, c.hidden, tag)
		}
	}
	// The token never reaches the DOM (not even as an input's value attribute).
	if bytes.Contains(dom, []byte(e.token)) || bytes.Contains(dom, []byte(e.token[3:])) {
		t.Errorf("the admin token is in the DOM")
	}
	if t.Failed() {
		t.Logf("rendered DOM:\n%s", dom)
	}
	n.stop(t)
}

// elementTag returns the start tag of the element with the id in a dumped DOM, and whether it
// has the hidden attribute.
func elementTag(dom []byte, id string) ([]byte, bool) {
	tag := regexp.MustCompile(`<[a-z0-9]+\s[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).Find(dom)
	return tag, regexp.MustCompile(`\shidden(=""|[\s>])`).Match(tag)
}
