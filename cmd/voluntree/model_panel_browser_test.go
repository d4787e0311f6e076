package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestModelPanelInABrowser: an owner of the operator organization, signed in with a one-time
// link (a session: every change carries its CSRF token), opens the Model tab, pushes the
// shipped model file through the API's chunks from the file picker, sees it checked and
// listed, promotes it, and sees the node serve it. Another organization's owner has no tab.
func TestModelPanelInABrowser(t *testing.T) {
	browser := requireChromium(t)
	const prefix = "e2e-modelpanel"
	flags := []string{"-redis-url", redisSrv.URL(t), "-redis-prefix", prefix}
	orgWithPages(t, prefix, "ops")
	orgWithPages(t, prefix, "other")
	n := startServe(t, "VOLUNTREE_REDIS_URL="+redisSrv.URL(t), "VOLUNTREE_REDIS_PREFIX="+prefix, "VOLUNTREE_OPERATOR_ORG=ops")
	defer n.stop(t)
	link := func(org string) string {
		t.Helper()
		code, out, errOut := runCLI(t, "", append([]string{"admin", "login-link", "-org", org, "-public-url", n.base}, flags...)...)
		if code != 0 {
			t.Fatalf("login-link %s: exit %d, %q", org, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	file, err := filepath.Abs("../../ml/models/intent.vtm")
	if err != nil {
		t.Fatal(err)
	}

	ctx := browserCtx(t, browser)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	xp := func(sel string) chromedp.Search { return chromedp.Search(sel) }
	step := browserSteps(t, ctx, n)
	step("sign in as the operator's owner", chromedp.Navigate(link("ops")),
		chromedp.WaitVisible(css("#manage")), chromedp.WaitVisible(css("#tab-models")),
		clickTab("models"),
		chromedp.WaitVisible(xp(`//table[@id="models-table"]//td[contains(., "No version pushed")]`)))
	step("push the model file",
		chromedp.SetUploadFiles(css("#model-file"), []string{file}),
		chromedp.SendKeys(css("#model-tag"), "panel1"),
		chromedp.SendKeys(css("#model-note"), "pushed from the dashboard"),
		chromedp.Click(css("#model-push-button")),
		chromedp.WaitVisible(xp(`//p[@id="model-push-status"][contains(., "panel1 pushed, accuracy 0.9")]`)),
		chromedp.WaitVisible(xp(`//table[@id="models-table"]//tr[@data-tag="panel1"][.//div[normalize-space()="pushed from the dashboard"]]`)))
	start := time.Now()
	step("promote it; the node serves it",
		chromedp.Click(css(`button[aria-label="Promote panel1"]`)),
		chromedp.WaitVisible(xp(`//p[@id="model-push-status"][contains(., "panel1 promoted")]`)),
		chromedp.WaitVisible(xp(`//table[@id="models-table"]//tr[@data-tag="panel1"]/td[contains(@class,"model-state")][normalize-space()="promoted"]`)),
		chromedp.WaitVisible(xp(`//table[@id="model-nodes"]//td[contains(@class,"node-version")][normalize-space()="panel1"]`)))
	if !n.serves(t, "panel1") {
		t.Fatal("the panel shows panel1 served, /metrics does not")
	}
	t.Logf("promoted in the panel, shown served by the node after %d ms", time.Since(start).Milliseconds())
	if img, err := chromedp.Run(ctx, chromedp.Screenshot(css("#manage"))); err == nil {
		_ = os.WriteFile(filepath.Join(artifactDir(t), "model-panel.png"), img, 0o644)
	}

	step("another organization's owner has no Model tab", chromedp.Navigate(link("other")),
		chromedp.WaitVisible(css("#manage")), chromedp.WaitVisible(xp(`//span[@id="org-name"][normalize-space()="Org other"]`)))
	if hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('tab-models').hidden`)); err != nil || !hidden {
		t.Fatalf("the Model tab of another organization's owner: hidden=%v, %v", hidden, err)
	}
}
