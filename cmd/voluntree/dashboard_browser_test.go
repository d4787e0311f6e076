package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserCtx starts headless Chromium driven over the DevTools protocol, for the test.
func browserCtx(t *testing.T, browser string) context.Context {
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

// TestDashboardManagesSignupsInABrowser signs in with a one-time link in Chromium, creates a
// signup with two slots through the Manage card, finds it listed with a fill bar per slot and
// its (empty) volunteers, publishes a post for it on the demo page (its status turns to
// published live), draws the stats, and sees the organization's members; with screenshots at
// 375 and 1280 px.
func TestDashboardManagesSignupsInABrowser(t *testing.T) {
	browser := requireChromium(t)
	n, _, _ := pipelineNode(t, "e2e-manage", "VOLUNTREE_DEMO=on")
	code, out, errOut := runCLI(t, "", "admin", "login-link", "-org", "demo", "-public-url", n.base,
		"-redis-url", redisSrv.URL(t), "-redis-prefix", "e2e-manage")
	if code != 0 {
		t.Fatalf("admin login-link: exit %d, %q %q", code, out, errOut)
	}
	ctx := browserCtx(t, browser)
	const title = "Beach cleanup in May"
	slot := func(i int, name string) string {
		return `#su-slots .slot-row:nth-child(` + string(rune('0'+i)) + `) input[name="` + name + `"]`
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	xp := func(sel string) chromedp.Search { return chromedp.Search(sel) }
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("browser, %s: %v", what, err)
		}
	}
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
	row := `//li[contains(@class,"signup-row")][.//button[normalize-space()="` + title + `"]]`
	step("sign in", chromedp.Navigate(strings.TrimSpace(out)), chromedp.WaitVisible(css("#manage")))
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
	meterMax := meter.Value
	step("its volunteers", chromedp.Click(xp(`//button[normalize-space()="`+title+`"]`)),
		chromedp.WaitVisible(xp(`//table[@id="volunteers-table"]//td[normalize-space()="Nobody yet."]`)))
	volunteers := text("#volunteers")
	small, wide := shot(375, 800), shot(1280, 900)
	// A post for it on the demo page, published now: its status turns live to published.
	step("posts", chromedp.Click(css("#tab-posts")),
		chromedp.WaitReady(xp(`//select[@id="post-signup"]/option[normalize-space()="`+title+`"]`)), // options have no box: ready, not visible
		chromedp.SetValue(css("#post-signup"), signupID(t, ctx, title)),
		chromedp.SendKeys(css("#post-message"), "Join us at the beach!"),
		chromedp.Click(css("#post-save")),
		chromedp.WaitVisible(xp(`//table[@id="posts-table"]//tr[.//div[normalize-space()="Join us at the beach!"]]/td[contains(@class,"post-status")][normalize-space()="published"]`)))
	step("stats", chromedp.Click(css("#tab-stats")),
		chromedp.WaitVisible(css("#stats-chart svg")),
		chromedp.WaitVisible(xp(`//div[@data-step="volunteers"][contains(., "In a conversation: 0")]`)))
	if caption := text("#stats-caption"); !strings.Contains(caption, "messages and") || !strings.Contains(caption, "over 30 days") {
		t.Errorf("stats caption %q", caption)
	}
	step("people", chromedp.Click(css("#tab-people")),
		chromedp.WaitVisible(xp(`//table[@id="members-table"]//td[contains(., "Demo owner")]`)))
	members := text("#members-table")
	for _, want := range []string{title, "2 slots", "0 volunteers", "Afternoon: 0 of 5", "0 of 3"} {
		if !strings.Contains(listText, want) {
			t.Errorf("signup list lacks %q: %q", want, listText)
		}
	}
	if meterMax != "3" {
		t.Errorf("the first slot's meter has max %q, want 3", meterMax)
	}
	if !strings.Contains(volunteers, "Volunteers of "+title) || !strings.Contains(volunteers, "Download CSV") {
		t.Errorf("volunteers panel %q", volunteers)
	}
	if !strings.Contains(members, "Demo owner") || !strings.Contains(members, "you") {
		t.Errorf("members %q", members)
	}
	dir := artifactDir(t)
	for name, img := range map[string][]byte{"manage-375.png": small, "manage-1280.png": wide} {
		if len(img) < 1000 {
			t.Errorf("screenshot %s is %d bytes", name, len(img))
		}
		if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The signup is stored as the form said.
	status, body := n.get(t, "/healthz")
	if status != 200 {
		t.Fatalf("healthz %d %s", status, body)
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
