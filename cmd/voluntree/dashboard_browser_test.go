package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	browserproto "github.com/chromedp/cdproto/browser"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/voluntree/voluntree/internal/fakegithub"
)

// browserCtx starts headless Chromium driven over the DevTools protocol, for the test.
func browserCtx(t testing.TB, browser string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// artifactDir is where browser tests leave their screenshots: $VOLUNTREE_ARTIFACTS, or
// .build/artifacts at the repository's root (git-ignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VOLUNTREE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", ".build", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pageConsole keeps what the page printed to its console and the exceptions it threw.
type pageConsole struct {
	mu    sync.Mutex
	lines []string
}

func (c *pageConsole) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lines, "\n")
}

// watchConsole records the page's console and uncaught exceptions, for browserFailure.
func watchConsole(t *testing.T, ctx context.Context) *pageConsole {
	t.Helper()
	c := &pageConsole{}
	add := func(s string) {
		c.mu.Lock()
		c.lines = append(c.lines, time.Now().Format("15:04:05.000 ")+s)
		c.mu.Unlock()
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdpruntime.EventConsoleAPICalled:
			args := make([]string, 0, len(ev.Args))
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			add(string(ev.Type) + ": " + strings.Join(args, " "))
		case *cdpruntime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			add(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber+1, msg))
		}
	})
	if err != nil {
		t.Fatalf("browser, console: %v", err)
	}
	return c
}

// browserSteps returns the step runner of a browser test: a step has its own 30 s deadline
// inside the test's, so that a stuck one still leaves the browser alive to say where it stood
// (browserFailure: a screenshot, the page's console, the server's log).
// clickTab selects a dashboard tab and waits for its panel. chromedp clicks at the tab's
// coordinates: when the layout moves as the click is sent (a list above re-rendering, a status
// line appearing), the click can land beside the tab and the panel never shows, so it clicks
// again until the tab says it is selected.
func clickTab(name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		for {
			if _, err := chromedp.Click(chromedp.CSS("#tab-"+name))(ctx, t); err != nil {
				return chromedp.Void{}, err
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := chromedp.WaitVisible(chromedp.CSS("#panel-"+name))(wctx, t)
			if err == nil {
				_, err = chromedp.WaitReady(chromedp.CSS(`#tab-`+name+`[aria-selected="true"]`))(wctx, t)
			}
			cancel()
			if err == nil || ctx.Err() != nil {
				return chromedp.Void{}, ctx.Err()
			}
		}
	}
}

func browserSteps(t *testing.T, ctx context.Context, n *node) func(what string, steps ...chromedp.Action[chromedp.Void]) {
	console := watchConsole(t, ctx)
	return func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			browserFailure(t, ctx, console, n, what)
			t.Fatalf("browser, %s: %v", what, err)
		}
	}
}

// browserFailure leaves what a stuck browser step needs to be understood: a screenshot in the
// artifacts, and in the test's log the page's console and the tail of the server's log.
func browserFailure(t *testing.T, ctx context.Context, console *pageConsole, n *node, what string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if img, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)); err == nil {
		name := filepath.Join(artifactDir(t), "failed-"+regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(what), "-")+".png")
		if err := os.WriteFile(name, img, 0o644); err == nil {
			t.Logf("screenshot of the failed step: %s", name)
		}
	}
	log := n.log()
	if len(log) > 20000 {
		log = log[len(log)-20000:]
	}
	t.Logf("the page's console:\n%s\nthe server's log (tail):\n%s", console, log)
}

// TestAdminWalksTheDashboardInABrowser walks the dashboard in Chromium as a newcomer admin
// would, start to finish: an owner's invitation, accepted by signing in through (the fake)
// GitHub; a signup with two slots; a post written and published on the organization's page
// (the fake Graph API); a comment on it as Facebook delivers it, seen in the live feed and in
// the signup's volunteer list, whose row follows the volunteer live through the Messenger
// conversation to a booking (and the slot's fill bar with it); the stats and the members; the
// volunteers' CSV downloaded and read. Screenshots at 375 and 1280 px are kept as artifacts.
func TestAdminWalksTheDashboardInABrowser(t *testing.T) {
	browser := requireChromium(t)
	gh := fakegithub.New()
	t.Cleanup(gh.Close)
	gh.SetDialogUser(&fakegithub.Account{ID: 7, Login: "ada", Name: "Ada Admin", Email: "ada@acme.example"})
	e := newPublishEnv(t, "e2e-walk", "VOLUNTREE_POLL_INTERVAL=0", "VOLUNTREE_MAIL_OUTBOX=on",
		"VOLUNTREE_GITHUB_CLIENT_ID="+gh.ClientID, "VOLUNTREE_GITHUB_CLIENT_SECRET="+gh.ClientSecret,
		"VOLUNTREE_GITHUB_URL="+gh.URL, "VOLUNTREE_GITHUB_API_URL="+gh.URL)
	n := startServe(t, e.env...)
	e.graph.SetWebhook(n.base+"/webhooks/facebook", e2eSecret)
	// The owner's script invites Ada; the outbox holds the email with the link.
	if code, out := e.api(t, n, "POST", "/api/v1/invitations", map[string]any{"email": "ada@acme.example", "role": "owner"}); code != 201 {
		t.Fatalf("invite: %d %v", code, out)
	}
	link := ""
	waitRedis(t, func() bool {
		_, box := e.api(t, n, "GET", "/api/v1/outbox", nil)
		items, _ := box["items"].([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			text, _ := m["text"].(string)
			if m["to"] == "ada@acme.example" {
				link = regexp.MustCompile(`https?://\S+/invite\?token=\S+`).FindString(text)
			}
		}
		return link != ""
	}, "the invitation email")

	ctx := browserCtx(t, browser)
	const title = "Beach cleanup in May"
	slot := func(i int, name string) string {
		return `#su-slots .slot-row:nth-child(` + string(rune('0'+i)) + `) input[name="` + name + `"]`
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	xp := func(sel string) chromedp.Search { return chromedp.Search(sel) }
	step := browserSteps(t, ctx, n)
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("browser, text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(w, h int64) []byte {
		t.Helper()
		step("viewport", chromedp.EmulateViewport(w, h))
		img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
		if err != nil {
			t.Fatalf("browser, screenshot: %v", err)
		}
		return img
	}

	// 1. Sign in through GitHub, accepting the invitation on the way.
	step("accept the invitation with GitHub", chromedp.Navigate(link),
		chromedp.Click(xp(`//a[normalize-space()="Sign in with GitHub to accept"]`)),
		chromedp.WaitVisible(css("#manage")),
		chromedp.WaitVisible(xp(`//span[@id="org-name"][normalize-space()="Acme"]`)))

	// The live feed got its ticket with the session at the first try (the CSRF token came with
	// the sign-in's GET /me: a POST before it is refused and retried only after a backoff).
	step("the feed live", chromedp.WaitVisible(xp(`//span[@id="conn-status"][@data-state="live"]`)))
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`performance.getEntriesByType('resource').filter((r) => r.name.includes('/api/v1/ws-tickets')).length`)); err != nil || n != 1 {
		t.Errorf("the feed asked for %d tickets (%v), want 1", n, err)
	}

	// 2. A signup with two slots.
	row := `//li[contains(@class,"signup-row")][.//button[normalize-space()="` + title + `"]]`
	step("fill in a signup",
		chromedp.Click(css("#signup-new")),
		chromedp.SendKeys(css("#su-title"), title),
		chromedp.SetValue(css("#su-tz"), "Europe/Paris"),
		chromedp.SetValue(css(slot(1, "date")), "2031-05-04"),
		chromedp.SetValue(css(slot(1, "start")), "09:00"),
		chromedp.SetValue(css(slot(1, "end")), "12:00"),
		chromedp.SetValue(css(slot(1, "required")), "3"),
		chromedp.Click(css("#su-add-slot")),
		chromedp.SetValue(css(slot(2, "date")), "2031-05-04"),
		chromedp.SetValue(css(slot(2, "start")), "14:00"),
		chromedp.SetValue(css(slot(2, "end")), "17:00"),
		chromedp.SetValue(css(slot(2, "title")), "Afternoon"),
		chromedp.Click(css("#signup-save")),
		chromedp.WaitVisible(xp(row)),
		chromedp.WaitNotVisible(css("#signup-form")))
	listText := text("#signup-list")
	meter, err := chromedp.Run(ctx, chromedp.AttributeValue(xp(row+`//div[@role="meter"]`), "aria-valuemax"))
	if err != nil {
		t.Fatalf("browser, meter: %v", err)
	}
	suID := signupID(t, ctx, title)

	// 3. A post on the organization's page, published now through the Graph API.
	step("write and publish a post", clickTab("posts"),
		chromedp.WaitReady(xp(`//select[@id="post-signup"]/option[normalize-space()="`+title+`"]`)), // options have no box: ready, not visible
		chromedp.WaitReady(xp(`//select[@id="post-page"]/option[@value="`+e.page+`"]`)),
		chromedp.SetValue(css("#post-signup"), suID),
		chromedp.SetValue(css("#post-page"), e.page),
		chromedp.SendKeys(css("#post-message"), "Join us at the beach!"),
		chromedp.Click(css("#post-save")),
		chromedp.WaitVisible(xp(`//table[@id="posts-table"]//tr[.//div[normalize-space()="Join us at the beach!"]]/td[contains(@class,"post-status")][normalize-space()="published"]`)))
	posts := e.graph.Posts(e.page)
	if len(posts) != 1 || !strings.HasPrefix(posts[0].Message, "Join us at the beach!") {
		t.Fatalf("the fake Graph API has posts %+v", posts)
	}
	fbPost := posts[0].ID

	// 4. A comment on it, as Facebook delivers it (signed webhook); 5. it shows in the feed, and
	// its author in the signup's volunteers.
	v := &messengerVolunteer{t: t, n: n, e: e, psid: "psid-grace"}
	v.comment(fbPost, "Grace Hopper")
	step("the comment in the live feed", clickTab("signups"),
		chromedp.WaitVisible(xp(`//ol[@id="signups"]/li[.//span[contains(@class,"name")][normalize-space()="Grace Hopper"]]`)))
	vrow := `//table[@id="volunteers-table"]//tr[td[1][normalize-space()="Grace Hopper"]]`
	step("the volunteer in the list", chromedp.Click(xp(`//button[normalize-space()="`+title+`"]`)),
		chromedp.WaitVisible(xp(vrow+`/td[2][normalize-space()="messenger"]`)),
		chromedp.WaitVisible(xp(vrow+`/td[3][normalize-space()="invited"]`)))
	// The conversation goes on in Messenger; the row follows it without a reload.
	v.await("Thanks for your interest")
	v.say("yes", "")
	v.await("What's your email address?")
	step("the row follows: email asked", chromedp.WaitVisible(xp(vrow+`/td[3][normalize-space()="email"]`)))
	v.say("grace@example.org", "grace@example.org")
	v.await("We've sent a 6-digit code")
	v.say(outboxCode(t, e.store.Client(), e.prefix, "grace@example.org", ""), "")
	slots := v.await("Which slot suits you?")
	v.tap(slots.QuickReplies[0].Title, slots.QuickReplies[0].Payload)
	v.await("You're booked")
	step("the row follows: booked, verified, in the morning slot",
		chromedp.WaitVisible(xp(vrow+`[td[3][normalize-space()="booked"]][td[4][normalize-space()="grace@example.org ✓"]]/td[5][normalize-space()="2031-05-04 09:00"]`)),
		chromedp.WaitVisible(xp(row+`//*[contains(@class,"fill-label")][contains(., ": 1 of 3")]`)),
		chromedp.WaitVisible(xp(`//ol[@id="activity"]/li[normalize-space()="Grace Hopper booked 2031-05-04 09:00: 1 of 3 filled"]`)))
	small, wide := shot(375, 800), shot(1280, 900)

	// 6. The CSV, downloaded by the browser.
	// The file is read once the browser says the download completed: the file can exist, still
	// empty, before that.
	downloads := t.TempDir()
	completed := make(chan struct{}, 1)
	if err := chromedp.ListenBrowser(ctx, func(ev any) {
		if d, ok := ev.(*browserproto.EventDownloadProgress); ok && d.State == browserproto.DownloadProgressStateCompleted {
			select {
			case completed <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		t.Fatalf("browser, download events: %v", err)
	}
	events := true
	step("download the CSV", chromedp.EmulateViewport(1280, 900),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.CallBrowser(ctx, browserproto.SetDownloadBehavior, browserproto.SetDownloadBehaviorParams{
				Behavior: browserproto.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads, EventsEnabled: &events})
			return err
		}),
		chromedp.Click(css("#volunteers-csv")))
	select {
	case <-completed:
	case <-time.After(30 * time.Second):
		t.Fatal("browser: the CSV download did not complete within 30s")
	}
	m, _ := filepath.Glob(filepath.Join(downloads, "*.csv"))
	if len(m) != 1 {
		t.Fatalf("downloaded %q, want one CSV", m)
	}
	csvFile := m[0]
	raw, err := os.ReadFile(csvFile)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatalf("CSV %q: %v", raw, err)
	}
	if filepath.Base(csvFile) != "volunteers-"+suID+".csv" || len(rows) != 2 || strings.Join(rows[0][:6], ",") != "name,channel,stage,email,email_verified,slot" ||
		strings.Join(rows[1][:5], ",") != "Grace Hopper,messenger,booked,grace@example.org,yes" || rows[1][6] != "2031-05-04" || rows[1][7] != "09:00" {
		t.Fatalf("CSV %s: %q", filepath.Base(csvFile), rows)
	}

	// The stats and the people.
	step("stats", clickTab("stats"),
		chromedp.WaitVisible(css("#stats-chart svg")),
		chromedp.WaitVisible(xp(`//div[@data-step="booked"][contains(., "Booked: 1")]`)))
	if caption := text("#stats-caption"); !strings.Contains(caption, "1 bookings") || !strings.Contains(caption, "over 30 days") {
		t.Errorf("stats caption %q", caption)
	}
	step("people", clickTab("people"),
		chromedp.WaitVisible(xp(`//table[@id="members-table"]//td[contains(., "Ada Admin (@ada)")]`)))
	members := text("#members-table")
	for _, want := range []string{title, "2 slots", "Afternoon: 0 of 5", "0 of 3"} {
		if !strings.Contains(listText, want) {
			t.Errorf("signup list lacks %q: %q", want, listText)
		}
	}
	if meter.Value != "3" {
		t.Errorf("the first slot's meter has max %q, want 3", meter.Value)
	}
	if !strings.Contains(members, "— you") {
		t.Errorf("members %q", members)
	}
	dir := artifactDir(t)
	for name, img := range map[string][]byte{"dashboard-375.png": small, "dashboard-1280.png": wide} {
		if len(img) < 1000 {
			t.Errorf("screenshot %s is %d bytes", name, len(img))
		}
		if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n.stop(t)
}

// signupID reads the id of the signup titled title from the dashboard's list.
func signupID(t *testing.T, ctx context.Context, title string) string {
	t.Helper()
	res, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.Search(`//li[contains(@class,"signup-row")][.//button[normalize-space()="`+title+`"]]`), "data-signup-id"))
	if err != nil || res.Value == "" {
		t.Fatalf("the signup's id: %q, %v", res.Value, err)
	}
	return res.Value
}
