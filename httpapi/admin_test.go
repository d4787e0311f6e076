package httpapi_test

// The admin REST API against a real Redis and the real HTTP server: auth, validation,
// pagination, signups, posts, pages, interests, stats, and organization isolation.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/voluntree/voluntree"
	"github.com/voluntree/voluntree/httpapi"
	"github.com/voluntree/voluntree/redisstore"
)

// adminEnv is a node with the admin API on.
type adminEnv struct {
	*pipelineEnv
}

func newAdminEnv(t *testing.T, adjust func(*httpapi.Config)) *adminEnv {
	t.Helper()
	e := newEnv(t, envOptions{config: func(c *httpapi.Config) {
		c.Store = c.Ingest.(*redisstore.Store) // newEnv's store, under the test's prefix
		if adjust != nil {
			adjust(c)
		}
	}})
	return &adminEnv{e}
}

// org creates an organization and returns an admin API token of it.
func (e *adminEnv) org(t *testing.T, id string) string {
	t.Helper()
	ctx := context.Background()
	if err := e.store.CreateOrg(ctx, voluntree.Organization{ID: id, Name: "Org " + id}); err != nil {
		t.Fatal(err)
	}
	token, _, err := e.store.CreateAdminToken(ctx, id, redisstore.TokenOptions{Label: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func (e *adminEnv) page(t *testing.T, orgID, pageID string) {
	t.Helper()
	err := e.store.SavePage(context.Background(), voluntree.Page{
		ID: pageID, OrgID: orgID, Name: "Page " + pageID, AccessToken: "EAA-secret-" + pageID,
	})
	if err != nil {
		t.Fatal(err)
	}
}

// do sends an admin request: body is nil (none), a string (sent as is) or a value (JSON).
func (e *adminEnv) do(t *testing.T, token, method, path string, body any) (int, []byte) {
	t.Helper()
	raw := bodyBytes(t, body)
	h := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		h["Authorization"] = "Bearer " + token
	}
	status, out, _ := request(t, method, e.url(path), raw, h)
	return status, out
}

// bodyBytes encodes a request body: nil (none), a string (as is) or a value (JSON).
func bodyBytes(t *testing.T, body any) []byte {
	t.Helper()
	switch b := body.(type) {
	case nil:
		return nil
	case string:
		return []byte(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
}

// must sends a request that must answer want, and decodes the answer into out (when not nil).
func (e *adminEnv) must(t *testing.T, want int, token, method, path string, body, out any) {
	t.Helper()
	status, raw := e.do(t, token, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, truncate(raw), want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, truncate(raw), err)
		}
	}
}

// mustFail sends a request that must fail with want; it returns the error body's field.
func (e *adminEnv) mustFail(t *testing.T, want int, token, method, path string, body any) string {
	t.Helper()
	status, raw := e.do(t, token, method, path, body)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, truncate(raw), want)
	}
	var eb struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Error == "" {
		t.Fatalf("%s %s: error body %s, want {\"error\": ...}", method, path, truncate(raw))
	}
	return eb.Field
}

type signupResp struct {
	voluntree.Signup
	Fills []struct {
		SlotID   string `json:"slot_id"`
		Filled   int    `json:"filled"`
		Required int    `json:"required"`
	} `json:"fills"`
}

type postResp struct {
	voluntree.Post
	Interests int `json:"interests"`
}

type list[T any] struct {
	Items  []T `json:"items"`
	Total  int `json:"total"`
	Limit  int `json:"limit"`
	Offset int `json:"offset"`
}

func slot(date, start, end string, required int) map[string]any {
	return map[string]any{"date": date, "start": start, "end": end, "required": required}
}

func signupBody(title string) map[string]any {
	return map[string]any{
		"title": title, "description": "Litter picking by the river", "facts": "Gloves provided.",
		"time_zone": "Europe/Paris",
		"slots":     []any{slot("2026-06-06", "09:00", "11:00", 5), slot("2026-06-06", "11:00", "13:00", 3)},
	}
}

func (e *adminEnv) createSignup(t *testing.T, token, title string) signupResp {
	t.Helper()
	var su signupResp
	e.must(t, 201, token, "POST", "/api/v1/signups", signupBody(title), &su)
	return su
}

func (e *adminEnv) createPost(t *testing.T, token string, body map[string]any) postResp {
	t.Helper()
	var p postResp
	e.must(t, 201, token, "POST", "/api/v1/posts", body, &p)
	return p
}

// setPost changes a post in the store directly (what the publisher would do).
func (e *adminEnv) setPost(t *testing.T, id string, fn func(*voluntree.Post)) {
	t.Helper()
	_, err := e.store.UpdatePost(context.Background(), id, func(p *voluntree.Post) (redisstore.QueueOp, error) {
		fn(p)
		return redisstore.QueueOp{Remove: true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *adminEnv) queued(t *testing.T, postID string) (time.Time, bool) {
	t.Helper()
	at, ok, err := e.store.QueuedAt(context.Background(), postID)
	if err != nil {
		t.Fatal(err)
	}
	return at, ok
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	token := e.org(t, "org_a")

	cases := []struct {
		name, header string
	}{
		{"no header", ""},
		{"wrong scheme", "Basic " + token},
		{"bearer without token", "Bearer "},
		{"unknown token", "Bearer vt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"not a token", "Bearer hello"},
		{"token with one character changed", "Bearer " + token[:len(token)-1] + string(token[len(token)-1]^1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.header != "" {
				h["Authorization"] = tc.header
			}
			status, raw, hdr := request(t, "GET", e.url("/api/v1/me"), nil, h)
			if status != 401 {
				t.Fatalf("status %d (%s), want 401", status, truncate(raw))
			}
			requireErrorBody(t, raw)
			if got := hdr.Get("WWW-Authenticate"); got != "Bearer" {
				t.Fatalf("WWW-Authenticate %q, want Bearer", got)
			}
		})
	}

	var me struct {
		Org voluntree.Organization `json:"org"`
	}
	e.must(t, 200, token, "GET", "/api/v1/me", nil, &me)
	if me.Org.ID != "org_a" || me.Org.Name != "Org org_a" {
		t.Fatalf("GET /api/v1/me: %+v", me.Org)
	}
	// Every admin route is behind the gate; an unknown path is still a 404.
	for _, path := range []string{"/api/v1/signups", "/api/v1/posts", "/api/v1/pages", "/api/v1/stats", "/api/v1/orgs/org_a/stats"} {
		e.mustFail(t, 401, "", "GET", path, nil)
	}
	e.mustFail(t, 404, "", "GET", "/api/v1/nothing-here", nil)
}

func TestAdminRoutesNeedAStore(t *testing.T) {
	t.Parallel()
	e := &adminEnv{newEnv(t, envOptions{})}
	e.mustFail(t, 404, "", "GET", "/api/v1/me", nil)
}

func TestAdminSignupValidation(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	token := e.org(t, "org_a")
	with := func(change func(map[string]any)) map[string]any {
		b := signupBody("Riverside cleanup")
		change(b)
		return b
	}
	withSlot := func(s map[string]any) map[string]any {
		return with(func(b map[string]any) { b["slots"] = []any{s} })
	}
	cases := []struct {
		name  string
		body  any
		field string
	}{
		{"missing title", with(func(b map[string]any) { delete(b, "title") }), "title"},
		{"blank title", with(func(b map[string]any) { b["title"] = "  " }), "title"},
		{"bad slot date", withSlot(slot("2026-13-01", "09:00", "10:00", 1)), "slots[0].date"},
		{"slot date not a date", withSlot(slot("June 6", "09:00", "10:00", 1)), "slots[0].date"},
		{"bad start", withSlot(slot("2026-06-06", "9am", "10:00", 1)), "slots[0].start"},
		{"end before start", withSlot(slot("2026-06-06", "10:00", "09:00", 1)), "slots[0].end"},
		{"required 0", withSlot(slot("2026-06-06", "09:00", "10:00", 0)), "slots[0].required"},
		{"unknown time zone", with(func(b map[string]any) { b["time_zone"] = "Mars/Olympus" }), "time_zone"},
		{"unknown JSON field", with(func(b map[string]any) { b["colour"] = "green" }), "colour"},
		{"wrong type", with(func(b map[string]any) { b["title"] = 5 }), "title"},
		{"not an object", `["Riverside cleanup"]`, ""},
		{"not JSON", `{"title": `, ""},
		{"two objects", `{"title": "a"} {"title": "b"}`, ""},
		{"empty body", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			field := e.mustFail(t, 400, token, "POST", "/api/v1/signups", tc.body)
			if field != tc.field {
				t.Fatalf("field %q, want %q", field, tc.field)
			}
		})
	}
	var l list[voluntree.Signup]
	e.must(t, 200, token, "GET", "/api/v1/signups", nil, &l)
	if l.Total != 0 {
		t.Fatalf("refused signups were stored: %+v", l)
	}

	// A refused PATCH changes nothing.
	su := e.createSignup(t, token, "Riverside cleanup")
	field := e.mustFail(t, 400, token, "PATCH", "/api/v1/signups/"+su.ID,
		map[string]any{"slots": []any{slot("2026-06-06", "12:00", "11:00", 2)}})
	if field != "slots[0].end" {
		t.Fatalf("PATCH with a bad slot: field %q", field)
	}
	var got signupResp
	e.must(t, 200, token, "GET", "/api/v1/signups/"+su.ID, nil, &got)
	if len(got.Slots) != 2 || got.Slots[0].ID != su.Slots[0].ID {
		t.Fatalf("a refused PATCH changed the signup: %+v", got.Slots)
	}

	for _, q := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=201", "limit"}, {"limit=ten", "limit"}, {"limit=-1", "limit"},
		{"offset=-1", "offset"}, {"offset=x", "offset"},
	} {
		if f := e.mustFail(t, 400, token, "GET", "/api/v1/signups?"+q.query, nil); f != q.field {
			t.Fatalf("?%s: field %q, want %q", q.query, f, q.field)
		}
	}
	e.mustFail(t, 404, token, "GET", "/api/v1/signups/not%20an%20id", nil)
	e.mustFail(t, 404, token, "GET", "/api/v1/signups/su_missing", nil)
}

func TestAdminSignupCRUD(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	token := e.org(t, "org_a")
	ctx := context.Background()

	status, raw, hdr := request(t, "POST", e.url("/api/v1/signups"), mustMarshal(t, signupBody("  Riverside cleanup ")),
		map[string]string{"Authorization": "Bearer " + token})
	if status != 201 {
		t.Fatalf("POST /api/v1/signups: %d %s", status, truncate(raw))
	}
	var su signupResp
	if err := json.Unmarshal(raw, &su); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(su.ID, "su_") || su.OrgID != "org_a" || su.Title != "Riverside cleanup" ||
		su.TimeZone != "Europe/Paris" || su.Disabled || su.CreatedAt.IsZero() || len(su.Slots) != 2 {
		t.Fatalf("created %+v", su)
	}
	if loc := hdr.Get("Location"); loc != "/api/v1/signups/"+su.ID {
		t.Fatalf("Location %q", loc)
	}
	s0, s1 := su.Slots[0].ID, su.Slots[1].ID
	if s0 == "" || s1 == "" || s0 == s1 || len(su.Fills) != 2 || su.Fills[0].SlotID != s0 || su.Fills[0].Required != 5 {
		t.Fatalf("slots %+v fills %+v", su.Slots, su.Fills)
	}

	var got signupResp
	e.must(t, 200, token, "GET", "/api/v1/signups/"+su.ID, nil, &got)
	if got.Title != su.Title || got.Facts != "Gloves provided." || !slices.Equal(got.Slots, su.Slots) {
		t.Fatalf("GET %+v, want %+v", got, su)
	}

	// PATCH: only the fields sent.
	e.must(t, 200, token, "PATCH", "/api/v1/signups/"+su.ID, map[string]any{"disabled": true}, &got)
	if !got.Disabled || got.Title != su.Title || !slices.Equal(got.Slots, su.Slots) || got.Description != su.Description {
		t.Fatalf("PATCH disabled: %+v", got)
	}
	e.must(t, 200, token, "GET", "/api/v1/signups/"+su.ID, nil, &got)
	if !got.Disabled {
		t.Fatal("PATCH disabled was not stored")
	}

	// Someone chose the first slot.
	if _, err := e.store.Book(ctx, su.ID, s0, 6, "p:c1", redisstore.BookingRecord{PostKey: "fb_1", Interest: "c1"}, 0); err != nil {
		t.Fatal(err)
	}

	// PUT: a full replace; the first slot keeps its id (and volunteer), the second is
	// replaced by a new one.
	put := map[string]any{
		"title": "Riverside cleanup (new date)", "time_zone": "UTC",
		"slots": []any{
			map[string]any{"id": s0, "date": "2026-06-13", "start": "09:00", "end": "11:30", "title": "Morning", "required": 6},
			slot("2026-06-13", "14:00", "16:00", 2),
		},
	}
	got = signupResp{} // absent fields (omitempty) must not keep earlier values
	e.must(t, 200, token, "PUT", "/api/v1/signups/"+su.ID, put, &got)
	if got.Title != "Riverside cleanup (new date)" || got.Description != "" || got.Facts != "" || got.Disabled ||
		got.TimeZone != "UTC" || len(got.Slots) != 2 || got.Slots[0].ID != s0 || got.Slots[0].Title != "Morning" ||
		got.Slots[1].ID == "" || got.Slots[1].ID == s1 || !got.CreatedAt.Equal(su.CreatedAt) || got.UpdatedAt.Before(su.UpdatedAt) {
		t.Fatalf("PUT: %+v", got)
	}
	if got.Fills[0].SlotID != s0 || got.Fills[0].Filled != 1 || got.Fills[0].Required != 6 || got.Fills[1].Filled != 0 {
		t.Fatalf("fills after PUT: %+v", got.Fills)
	}

	// The slot with a volunteer cannot go.
	e.mustFail(t, 409, token, "PUT", "/api/v1/signups/"+su.ID, map[string]any{
		"title": "x", "slots": []any{slot("2026-06-13", "14:00", "16:00", 2)}})
	e.mustFail(t, 409, token, "PATCH", "/api/v1/signups/"+su.ID, map[string]any{"slots": []any{}})
	e.must(t, 200, token, "GET", "/api/v1/signups/"+su.ID, nil, &got)
	if got.Title != "Riverside cleanup (new date)" || len(got.Slots) != 2 || got.Slots[0].ID != s0 {
		t.Fatalf("a refused update changed the signup: %+v", got)
	}

	e.must(t, 204, token, "DELETE", "/api/v1/signups/"+su.ID, nil, nil)
	e.mustFail(t, 404, token, "GET", "/api/v1/signups/"+su.ID, nil)
	e.mustFail(t, 404, token, "DELETE", "/api/v1/signups/"+su.ID, nil)
	var l list[voluntree.Signup]
	e.must(t, 200, token, "GET", "/api/v1/signups", nil, &l)
	if l.Total != 0 || len(l.Items) != 0 {
		t.Fatalf("list after delete: %+v", l)
	}
}

func TestAdminDeleteSignupWithPosts(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	token := e.org(t, "org_a")
	e.page(t, "org_a", "1001")
	su := e.createSignup(t, token, "Cleanup")
	e.createPost(t, token, map[string]any{"signup_id": su.ID, "page_id": "1001", "message": "Join us", "draft": true})
	e.createPost(t, token, map[string]any{"signup_id": su.ID, "page_id": "1001", "message": "Join us"})
	e.mustFail(t, 409, token, "DELETE", "/api/v1/signups/"+su.ID, nil)
	e.must(t, 200, token, "GET", "/api/v1/signups/"+su.ID, nil, nil)
}

// stepClock is a pinned clock that moves one second per reading: creation order is then the
// listing order.
func stepClock(start time.Time) func() time.Time {
	var n atomic.Int64
	return func() time.Time { return start.Add(time.Duration(n.Add(1)) * time.Second) }
}

func TestAdminSignupPagination(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, func(c *httpapi.Config) { c.Now = stepClock(time.Now()) })
	token := e.org(t, "org_a")
	var created []string
	for i := range 7 {
		created = append(created, e.createSignup(t, token, fmt.Sprintf("Signup %d", i)).ID)
	}
	var listed []string
	for _, tc := range []struct{ offset, items int }{{0, 3}, {3, 3}, {6, 1}, {7, 0}} {
		var l list[voluntree.Signup]
		e.must(t, 200, token, "GET", fmt.Sprintf("/api/v1/signups?limit=3&offset=%d", tc.offset), nil, &l)
		if len(l.Items) != tc.items || l.Total != 7 || l.Limit != 3 || l.Offset != tc.offset {
			t.Fatalf("offset %d: %d items, total %d, limit %d, offset %d", tc.offset, len(l.Items), l.Total, l.Limit, l.Offset)
		}
		for _, su := range l.Items {
			listed = append(listed, su.ID)
		}
	}
	if !slices.Equal(listed, created) {
		t.Fatalf("paged listing %v, want the creation order %v", listed, created)
	}
	var l list[voluntree.Signup]
	e.must(t, 200, token, "GET", "/api/v1/signups", nil, &l)
	if len(l.Items) != 7 || l.Limit != httpapi.DefaultPageLimit || l.Offset != 0 {
		t.Fatalf("default page: %d items, limit %d", len(l.Items), l.Limit)
	}
}

func TestAdminOrganizationIsolation(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ctx := context.Background()
	tokenA, tokenB := e.org(t, "org_a"), e.org(t, "org_b")
	e.page(t, "org_a", "1001")
	e.page(t, "org_b", "2002")
	suA := e.createSignup(t, tokenA, "A's signup")
	suB := e.createSignup(t, tokenB, "B's signup")
	scheduled := e.createPost(t, tokenB, map[string]any{"signup_id": suB.ID, "page_id": "2002", "message": "B now"})
	draft := e.createPost(t, tokenB, map[string]any{"signup_id": suB.ID, "page_id": "2002", "message": "B later", "draft": true})
	failed := e.createPost(t, tokenB, map[string]any{"signup_id": suB.ID, "page_id": "2002", "message": "B failed"})
	e.setPost(t, failed.ID, func(p *voluntree.Post) { p.Status, p.Error, p.ErrorCode = voluntree.PostFailed, "bad", 100 })
	slotB := suB.Slots[0].ID

	forbidden := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/signups/" + suB.ID, nil},
		{"PUT", "/api/v1/signups/" + suB.ID, signupBody("taken over")},
		{"PATCH", "/api/v1/signups/" + suB.ID, map[string]any{"disabled": true}},
		{"DELETE", "/api/v1/signups/" + suB.ID, nil},
		{"GET", "/api/v1/signups/" + suB.ID + "/slots/" + slotB + "/interests", nil},
		{"GET", "/api/v1/signups/" + suB.ID + "/slots/sl_unknown/interests", nil},
		{"GET", "/api/v1/posts/" + scheduled.ID, nil},
		{"POST", "/api/v1/posts/" + scheduled.ID + "/cancel", nil},
		{"POST", "/api/v1/posts/" + failed.ID + "/retry", nil},
		{"POST", "/api/v1/posts/" + draft.ID + "/publish", nil},
		{"GET", "/api/v1/posts/" + scheduled.ID + "/interests", nil},
		{"GET", "/api/v1/orgs/org_b/stats", nil},
		{"GET", "/api/v1/orgs/org_unknown/stats", nil},
		// A's own signup on B's page, and B's signup on A's page.
		{"POST", "/api/v1/posts", map[string]any{"signup_id": suA.ID, "page_id": "2002", "message": "hi"}},
		{"POST", "/api/v1/posts", map[string]any{"signup_id": suB.ID, "page_id": "1001", "message": "hi"}},
	}
	for _, f := range forbidden {
		t.Run(f.method+" "+f.path, func(t *testing.T) {
			e.mustFail(t, 403, tokenA, f.method, f.path, f.body)
		})
	}

	// A's lists hold none of B's records.
	var signups list[voluntree.Signup]
	e.must(t, 200, tokenA, "GET", "/api/v1/signups", nil, &signups)
	if signups.Total != 1 || signups.Items[0].ID != suA.ID {
		t.Fatalf("A's signups: %+v", signups)
	}
	var posts list[voluntree.Post]
	e.must(t, 200, tokenA, "GET", "/api/v1/posts", nil, &posts)
	if posts.Total != 0 {
		t.Fatalf("A's posts: %+v", posts)
	}
	var pages list[map[string]any]
	e.must(t, 200, tokenA, "GET", "/api/v1/pages", nil, &pages)
	if pages.Total != 1 || pages.Items[0]["id"] != "1001" {
		t.Fatalf("A's pages: %+v", pages)
	}

	// B's data is as it was.
	var gotSu signupResp
	e.must(t, 200, tokenB, "GET", "/api/v1/signups/"+suB.ID, nil, &gotSu)
	if gotSu.Title != "B's signup" || gotSu.Disabled || !slices.Equal(gotSu.Slots, suB.Slots) || !gotSu.UpdatedAt.Equal(suB.UpdatedAt) {
		t.Fatalf("B's signup after A's attempts: %+v", gotSu)
	}
	for id, want := range map[string]voluntree.PostStatus{
		scheduled.ID: voluntree.PostScheduled, draft.ID: voluntree.PostDraft, failed.ID: voluntree.PostFailed,
	} {
		var p postResp
		e.must(t, 200, tokenB, "GET", "/api/v1/posts/"+id, nil, &p)
		if p.Status != want {
			t.Fatalf("B's post %s is %s, want %s", id, p.Status, want)
		}
	}
	if _, ok := e.queued(t, scheduled.ID); !ok {
		t.Fatal("B's scheduled post left the queue")
	}
	if _, ok := e.queued(t, draft.ID); ok {
		t.Fatal("B's draft was queued")
	}
	ids, err := e.store.SignupPostIDs(ctx, suB.ID)
	if err != nil || len(ids) != 3 {
		t.Fatalf("B's signup posts: %v %v", ids, err)
	}
	e.must(t, 200, tokenB, "GET", "/api/v1/orgs/org_b/stats", nil, nil)
}

func TestAdminPosts(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ctx := context.Background()
	token := e.org(t, "org_a")
	e.org(t, "org_b")
	e.page(t, "org_a", "1001")
	e.page(t, "org_b", "2002")
	su := e.createSignup(t, token, "Cleanup")
	post := func(extra map[string]any) map[string]any {
		b := map[string]any{"signup_id": su.ID, "page_id": "1001", "message": "Join us on Saturday!", "append_summary": true}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}

	// Publish now: scheduled, due now.
	before := time.Now()
	now := e.createPost(t, token, post(nil))
	if now.Status != voluntree.PostScheduled || now.PublishAt == nil || now.OrgID != "org_a" || !now.AppendSummary ||
		!strings.HasPrefix(now.ID, "po_") {
		t.Fatalf("publish now: %+v", now)
	}
	if at, ok := e.queued(t, now.ID); !ok || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("publish now: queued %v at %v", ok, at)
	}

	// Publish later: queued at that time.
	later := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	sched := e.createPost(t, token, post(map[string]any{"publish_at": later.Format(time.RFC3339)}))
	if at, ok := e.queued(t, sched.ID); sched.Status != voluntree.PostScheduled || !ok || !at.Equal(later) {
		t.Fatalf("publish later: %s, queued %v at %v, want %v", sched.Status, ok, at, later)
	}

	// A draft is not queued; publishing it queues it.
	draft := e.createPost(t, token, post(map[string]any{"draft": true}))
	if _, ok := e.queued(t, draft.ID); draft.Status != voluntree.PostDraft || ok {
		t.Fatalf("draft: %s, queued %v", draft.Status, ok)
	}
	var p postResp
	e.must(t, 200, token, "POST", "/api/v1/posts/"+draft.ID+"/publish", nil, &p)
	if _, ok := e.queued(t, draft.ID); p.Status != voluntree.PostScheduled || !ok {
		t.Fatalf("published draft: %s, queued %v", p.Status, ok)
	}
	e.mustFail(t, 409, token, "POST", "/api/v1/posts/"+draft.ID+"/publish", nil)

	// A draft published at a set time.
	draft2 := e.createPost(t, token, post(map[string]any{"draft": true}))
	e.must(t, 200, token, "POST", "/api/v1/posts/"+draft2.ID+"/publish", map[string]any{"publish_at": later.Format(time.RFC3339)}, &p)
	if at, ok := e.queued(t, draft2.ID); !ok || !at.Equal(later) {
		t.Fatalf("draft published at %v: queued %v at %v", later, ok, at)
	}

	// Cancel: back to draft, out of the queue; twice is a conflict.
	e.must(t, 200, token, "POST", "/api/v1/posts/"+sched.ID+"/cancel", nil, &p)
	if _, ok := e.queued(t, sched.ID); p.Status != voluntree.PostDraft || ok {
		t.Fatalf("canceled: %s, queued %v", p.Status, ok)
	}
	e.mustFail(t, 409, token, "POST", "/api/v1/posts/"+sched.ID+"/cancel", nil)

	// A published post cannot be canceled (nor retried); it shows its interests.
	e.setPost(t, now.ID, func(p *voluntree.Post) {
		at := time.Now().UTC()
		p.Status, p.FacebookPostID, p.PublishedAt = voluntree.PostPublished, "1001_777", &at
	})
	e.mustFail(t, 409, token, "POST", "/api/v1/posts/"+now.ID+"/cancel", nil)
	e.mustFail(t, 409, token, "POST", "/api/v1/posts/"+now.ID+"/retry", nil)
	e.mustFail(t, 409, token, "POST", "/api/v1/posts/"+now.ID+"/publish", nil)
	e.mustFail(t, 409, token, "DELETE", "/api/v1/signups/"+su.ID, nil)

	// Retry of a failed post: scheduled now, error and attempts cleared.
	e.setPost(t, draft2.ID, func(p *voluntree.Post) {
		p.Status, p.Error, p.ErrorCode, p.Attempts, p.Unconfirmed = voluntree.PostFailed, "(#200) permissions", 200, 3, true
	})
	e.mustFail(t, 409, token, "POST", "/api/v1/posts/"+draft2.ID+"/cancel", nil)
	before = time.Now()
	e.must(t, 200, token, "POST", "/api/v1/posts/"+draft2.ID+"/retry", nil, &p)
	if p.Status != voluntree.PostScheduled || p.Error != "" || p.ErrorCode != 0 || p.Attempts != 0 || p.Unconfirmed {
		t.Fatalf("retried: %+v", p.Post)
	}
	if at, ok := e.queued(t, draft2.ID); !ok || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("retried: queued %v at %v, want now", ok, at)
	}
	e.mustFail(t, 409, token, "POST", "/api/v1/posts/"+draft2.ID+"/retry", nil)

	// Refusals.
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		field  string
	}{
		{"missing signup", post(map[string]any{"signup_id": "su_nothing"}), 400, "signup_id"},
		{"no signup", post(map[string]any{"signup_id": ""}), 400, "signup_id"},
		{"page not connected", post(map[string]any{"page_id": "3003"}), 400, "page_id"},
		{"another organization's page", post(map[string]any{"page_id": "2002"}), 403, ""},
		{"empty message", post(map[string]any{"message": " "}), 400, "message"},
		{"bad photo", post(map[string]any{"photo_url": "ftp://x/y.png"}), 400, "photo_url"},
		{"publish_at in the past", post(map[string]any{"publish_at": time.Now().Add(-time.Hour).Format(time.RFC3339)}), 400, "publish_at"},
		{"publish_at not a time", post(map[string]any{"publish_at": "tomorrow"}), 400, "publish_at"},
		{"unknown field", post(map[string]any{"publish": true}), 400, "publish"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if f := e.mustFail(t, tc.status, token, "POST", "/api/v1/posts", tc.body); f != tc.field {
				t.Fatalf("field %q, want %q", f, tc.field)
			}
		})
	}
	// A disabled signup takes no post.
	e.must(t, 200, token, "PATCH", "/api/v1/signups/"+su.ID, map[string]any{"disabled": true}, nil)
	e.mustFail(t, 409, token, "POST", "/api/v1/posts", post(nil))
	e.mustFail(t, 409, token, "POST", "/api/v1/posts/"+sched.ID+"/publish", nil)

	// Lists, with and without a status filter.
	var all list[voluntree.Post]
	e.must(t, 200, token, "GET", "/api/v1/posts", nil, &all)
	if all.Total != 4 || len(all.Items) != 4 {
		t.Fatalf("posts: total %d, %d items", all.Total, len(all.Items))
	}
	var drafts list[voluntree.Post]
	e.must(t, 200, token, "GET", "/api/v1/posts?status=draft", nil, &drafts)
	if drafts.Total != 1 || drafts.Items[0].ID != sched.ID {
		t.Fatalf("drafts: %+v", drafts)
	}
	e.must(t, 200, token, "GET", "/api/v1/posts?status=scheduled&limit=1&offset=1", nil, &drafts)
	if drafts.Total != 2 || len(drafts.Items) != 1 {
		t.Fatalf("scheduled, second page: %+v", drafts)
	}
	if f := e.mustFail(t, 400, token, "GET", "/api/v1/posts?status=gone", nil); f != "status" {
		t.Fatalf("bad status: field %q", f)
	}
	e.mustFail(t, 404, token, "GET", "/api/v1/posts/po_nothing", nil)
	e.mustFail(t, 404, token, "POST", "/api/v1/posts/po_nothing/cancel", nil)

	// Every status change is an event of type post, in order.
	replay, err := e.store.EventsAfter(ctx, "org_a", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var seen []voluntree.PostStatus
	for _, ev := range replay.Events {
		if ev.Type == voluntree.EventPost && ev.PostID == draft2.ID && ev.Post != nil {
			seen = append(seen, ev.Post.Status)
		}
	}
	// draft (created), scheduled (published at a time), scheduled (retried): the failure was
	// set behind the API's back.
	want := []voluntree.PostStatus{voluntree.PostDraft, voluntree.PostScheduled, voluntree.PostScheduled}
	if !slices.Equal(seen, want) {
		t.Fatalf("events of post %s: %v, want %v", draft2.ID, seen, want)
	}
	var canceled bool
	for _, ev := range replay.Events {
		if ev.Type == voluntree.EventPost && ev.PostID == sched.ID && ev.Post != nil && ev.Post.Status == voluntree.PostDraft {
			canceled = true
		}
	}
	if !canceled {
		t.Fatal("the cancel of a post is not in the events log")
	}
}

func TestAdminPagesHideTheirToken(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	token := e.org(t, "org_a")
	e.page(t, "org_a", "1001")
	e.page(t, "org_a", "1002")
	status, raw := e.do(t, token, "GET", "/api/v1/pages", nil)
	if status != 200 {
		t.Fatalf("GET /api/v1/pages: %d %s", status, truncate(raw))
	}
	if strings.Contains(string(raw), "EAA-secret") || strings.Contains(string(raw), "access_token") {
		t.Fatalf("the pages list shows a token: %s", raw)
	}
	var l list[map[string]any]
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatal(err)
	}
	if l.Total != 2 || len(l.Items) != 2 || l.Items[0]["id"] != "1001" || l.Items[0]["name"] != "Page 1001" || l.Items[0]["connected_at"] == nil {
		t.Fatalf("pages: %s", raw)
	}
	e.must(t, 200, token, "GET", "/api/v1/pages?limit=1&offset=1", nil, &l)
	if l.Total != 2 || len(l.Items) != 1 || l.Items[0]["id"] != "1002" {
		t.Fatalf("second page of pages: %+v", l)
	}
	// Their connection state: a page Graph refused, one whose token expires in 3 days.
	ctx := context.Background()
	now := time.Now().UTC()
	for _, p := range []voluntree.Page{
		{ID: "1001", OrgID: "org_a", Name: "Page 1001", AccessToken: "EAA-secret-1001", DisconnectedAt: &now, Error: "Error validating access token (code 190)"},
		{ID: "1002", OrgID: "org_a", Name: "Page 1002", AccessToken: "EAA-secret-1002", TokenExpiresAt: now.Add(72 * time.Hour)},
		{ID: "1003", OrgID: "org_a", Name: "Page 1003", AccessToken: "EAA-secret-1003", TokenExpiresAt: now.Add(60 * 24 * time.Hour)},
		{ID: "1004", OrgID: "org_a", Name: "Page 1004", AccessToken: "EAA-secret-1004", TokenExpiresAt: now.Add(-time.Hour)},
	} {
		if err := e.store.SavePage(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	e.must(t, 200, token, "GET", "/api/v1/pages", nil, &l)
	want := map[string]string{"1001": "disconnected", "1002": "expiring", "1003": "connected", "1004": "expired"}
	for _, it := range l.Items {
		if it["status"] != want[it["id"].(string)] {
			t.Errorf("page %v has status %v, want %s", it["id"], it["status"], want[it["id"].(string)])
		}
		if it["id"] == "1001" && (it["disconnected_at"] == nil || !strings.Contains(it["error"].(string), "190")) {
			t.Errorf("disconnected page %v", it)
		}
	}
	if len(l.Items) != 4 {
		t.Fatalf("pages %v", l.Items)
	}
}

func TestAdminInterests(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ctx := context.Background()
	token := e.org(t, "org_a")
	e.page(t, "org_a", "1001")
	su := e.createSignup(t, token, "Cleanup")
	published := e.createPost(t, token, map[string]any{"signup_id": su.ID, "page_id": "1001", "message": "Join us"})
	draft := e.createPost(t, token, map[string]any{"signup_id": su.ID, "page_id": "1001", "message": "Later", "draft": true})
	const fbPost = "1001_555"
	e.setPost(t, published.ID, func(p *voluntree.Post) {
		at := time.Now().UTC()
		p.Status, p.FacebookPostID, p.PublishedAt = voluntree.PostPublished, fbPost, &at
	})

	base := time.Now().UTC().Truncate(time.Millisecond)
	var ins []voluntree.Interest
	for i := range 5 {
		at := base.Add(time.Duration(i) * time.Second)
		ins = append(ins, voluntree.Interest{
			ID: fmt.Sprintf("%s_c%d", fbPost, i), PostID: fbPost, PageID: "1001", SenderID: fmt.Sprintf("u%d", i),
			SenderName: fmt.Sprintf("Person %d", i), Kind: voluntree.KindComment, Text: "I'm in",
			Intent: voluntree.IntentInterested, Confidence: 0.9, CreatedAt: at, ReceivedAt: at, RecordedAt: at,
		})
	}
	if _, err := e.store.Record(ctx, "org_a", fbPost, ins); err != nil {
		t.Fatal(err)
	}

	var p postResp
	e.must(t, 200, token, "GET", "/api/v1/posts/"+published.ID, nil, &p)
	if p.Interests != 5 || p.FacebookPostID != fbPost {
		t.Fatalf("published post: %d interests, facebook id %q", p.Interests, p.FacebookPostID)
	}
	var got []string
	for _, tc := range []struct{ offset, items int }{{0, 2}, {2, 2}, {4, 1}} {
		var l list[voluntree.Interest]
		e.must(t, 200, token, "GET", fmt.Sprintf("/api/v1/posts/%s/interests?limit=2&offset=%d", published.ID, tc.offset), nil, &l)
		if len(l.Items) != tc.items || l.Total != 5 || l.Limit != 2 || l.Offset != tc.offset {
			t.Fatalf("interests at %d: %+v", tc.offset, l)
		}
		for _, in := range l.Items {
			got = append(got, in.ID)
		}
	}
	var want []string
	for _, in := range ins {
		want = append(want, in.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("interests %v, want %v", got, want)
	}

	// A post that is not on Facebook has none.
	var l list[voluntree.Interest]
	e.must(t, 200, token, "GET", "/api/v1/posts/"+draft.ID+"/interests", nil, &l)
	if l.Total != 0 || l.Items == nil || len(l.Items) != 0 {
		t.Fatalf("interests of a draft: %+v", l)
	}

	// Two of them chose the first slot.
	slotID := su.Slots[0].ID
	for i := range 2 {
		rec := redisstore.BookingRecord{PostKey: fbPost, Interest: ins[i].ID, At: ins[i].CreatedAt}
		if _, err := e.store.Book(ctx, su.ID, slotID, su.Slots[0].Required, voluntree.ConversationID(ins[i].PageID, ins[i].SenderID), rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	e.must(t, 200, token, "GET", "/api/v1/signups/"+su.ID+"/slots/"+slotID+"/interests?limit=1", nil, &l)
	if l.Total != 2 || len(l.Items) != 1 || l.Items[0].ID != ins[0].ID || l.Items[0].SenderName != "Person 0" {
		t.Fatalf("slot interests: %+v", l)
	}
	e.must(t, 200, token, "GET", "/api/v1/signups/"+su.ID+"/slots/"+su.Slots[1].ID+"/interests", nil, &l)
	if l.Total != 0 || len(l.Items) != 0 {
		t.Fatalf("interests of an empty slot: %+v", l)
	}
	e.mustFail(t, 404, token, "GET", "/api/v1/signups/"+su.ID+"/slots/sl_nothing/interests", nil)
	var sv signupResp
	e.must(t, 200, token, "GET", "/api/v1/signups/"+su.ID, nil, &sv)
	if sv.Fills[0].Filled != 2 || sv.Fills[1].Filled != 0 {
		t.Fatalf("fills: %+v", sv.Fills)
	}
}

func TestAdminStats(t *testing.T) {
	t.Parallel()
	e := newAdminEnv(t, nil)
	ctx := context.Background()
	token := e.org(t, "org_a")
	e.page(t, "org_a", "1001")

	// One signup with a slot in March 2026, one disabled, one in April.
	mk := func(title, date string) signupResp {
		b := signupBody(title)
		b["time_zone"] = "UTC"
		b["slots"] = []any{slot(date, "10:00", "12:00", 4)}
		var su signupResp
		e.must(t, 201, token, "POST", "/api/v1/signups", b, &su)
		return su
	}
	march := mk("March", "2026-03-15")
	disabled := mk("Disabled", "2026-03-16")
	mk("April", "2026-04-10")
	e.must(t, 200, token, "PATCH", "/api/v1/signups/"+disabled.ID, map[string]any{"disabled": true}, nil)

	// Two posts published in March, one in April, one draft.
	for _, day := range []string{"2026-03-02", "2026-03-20", "2026-04-02"} {
		p := e.createPost(t, token, map[string]any{"signup_id": march.ID, "page_id": "1001", "message": "m"})
		e.setPost(t, p.ID, func(p *voluntree.Post) {
			at, _ := time.Parse(time.DateOnly, day)
			p.Status, p.FacebookPostID, p.PublishedAt = voluntree.PostPublished, "1001_"+day, &at
		})
	}
	e.createPost(t, token, map[string]any{"signup_id": march.ID, "page_id": "1001", "message": "m", "draft": true})

	// Interests: u1 in February and March (not new in March), u2 twice in March (new), u3 in
	// April.
	in := func(id, sender, date string) voluntree.Interest {
		at, _ := time.Parse(time.RFC3339, date)
		return voluntree.Interest{ID: id, PostID: "1001_p", PageID: "1001", SenderID: sender, Intent: voluntree.IntentInterested, CreatedAt: at, RecordedAt: at}
	}
	_, err := e.store.Record(ctx, "org_a", "1001_p", []voluntree.Interest{
		in("c1", "u1", "2026-02-10T10:00:00Z"), in("c2", "u1", "2026-03-05T10:00:00Z"),
		in("c3", "u2", "2026-03-06T10:00:00Z"), in("c4", "u2", "2026-03-31T23:00:00Z"),
		in("c5", "u3", "2026-04-01T00:00:00Z"),
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"/api/v1/stats", "/api/v1/orgs/org_a/stats"} {
		var st voluntree.Stats
		// A date-only "to" includes its day.
		e.must(t, 200, token, "GET", path+"?from=2026-03-01&to=2026-03-31", nil, &st)
		if st.ActiveSignups != 1 || st.Posts != 2 || st.Interests != 3 || st.Volunteers != 2 || st.NewVolunteers != 1 {
			t.Fatalf("%s, March: %+v", path, st)
		}
		if st.PostsByStatus[voluntree.PostPublished] != 3 || st.PostsByStatus[voluntree.PostDraft] != 1 {
			t.Fatalf("%s, posts by status: %v", path, st.PostsByStatus)
		}
		if !st.From.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) || !st.To.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("%s: range %v – %v", path, st.From, st.To)
		}
	}
	// A range that excludes them all.
	var st voluntree.Stats
	e.must(t, 200, token, "GET", "/api/v1/stats?from=2025-06-01T00:00:00Z&to=2025-07-01T00:00:00Z", nil, &st)
	if st.ActiveSignups != 0 || st.Posts != 0 || st.Interests != 0 || st.Volunteers != 0 || st.NewVolunteers != 0 {
		t.Fatalf("June 2025: %+v", st)
	}
	// February: u1 is new then.
	e.must(t, 200, token, "GET", "/api/v1/stats?from=2026-02-01&to=2026-02-28", nil, &st)
	if st.Interests != 1 || st.Volunteers != 1 || st.NewVolunteers != 1 || st.Posts != 0 {
		t.Fatalf("February: %+v", st)
	}
	// The default: the last 30 days.
	e.must(t, 200, token, "GET", "/api/v1/stats", nil, &st)
	if d := st.To.Sub(st.From); d != httpapi.DefaultStatsRange || time.Since(st.To) > time.Minute {
		t.Fatalf("default range %v – %v", st.From, st.To)
	}

	for _, tc := range []struct{ query, field string }{
		{"from=2026-03-10&to=2026-03-01", "to"},
		{"from=2026-03-01T00:00:00Z&to=2026-03-01T00:00:00Z", "to"},
		{"from=2024-01-01&to=2025-06-01", "from"},
		{"from=March", "from"},
		{"to=2026-02-30", "to"},
	} {
		if f := e.mustFail(t, 400, token, "GET", "/api/v1/stats?"+tc.query, nil); f != tc.field {
			t.Fatalf("?%s: field %q, want %q", tc.query, f, tc.field)
		}
	}
	// 366 days is the longest range.
	e.must(t, 200, token, "GET", "/api/v1/stats?from=2024-01-01&to=2024-12-31", nil, nil)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
