package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// What loadgen asks of the server besides webhooks: a live-feed ticket for the organization
// that owns the page (an admin API token buys one), and the node's memory from /metrics.

// loadgenTicket checks that the token's organization owns page and returns a ticket for its
// live feed.
func loadgenTicket(ctx context.Context, client *http.Client, ep loadgenEndpoints, token, page string) (string, error) {
	var me struct {
		Org struct {
			ID string `json:"id"`
		} `json:"org"`
	}
	if err := loadgenAPI(ctx, client, http.MethodGet, ep.API+"/me", token, &me); err != nil {
		return "", err
	}
	var pages struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
		Total int `json:"total"`
	}
	found := false
	for offset := 0; !found; offset += 200 {
		if err := loadgenAPI(ctx, client, http.MethodGet, fmt.Sprintf("%s/pages?limit=200&offset=%d", ep.API, offset), token, &pages); err != nil {
			return "", err
		}
		for _, p := range pages.Items {
			found = found || p.ID == page
		}
		if len(pages.Items) == 0 || offset+len(pages.Items) >= pages.Total {
			break
		}
	}
	if !found {
		return "", fmt.Errorf("page %s is not connected to organization %s, so its events reach no feed; connect it: voluntree admin add-page -org %s -page %s",
			page, me.Org.ID, me.Org.ID, page)
	}
	var t struct {
		Ticket string `json:"ticket"`
	}
	if err := loadgenAPI(ctx, client, http.MethodPost, ep.API+"/ws-tickets", token, &t); err != nil {
		return "", err
	}
	if t.Ticket == "" {
		return "", errors.New("POST /api/v1/ws-tickets answered no ticket")
	}
	return t.Ticket, nil
}

// loadgenAPI calls the admin API with a Bearer token and decodes the JSON answer into out.
func loadgenAPI(ctx context.Context, client *http.Client, method, url, token string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := string(bytes.TrimSpace(body[:min(len(body), 300)]))
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%s %s: the server refused -token (HTTP 401: %s)", method, url, msg)
		}
		return fmt.Errorf("%s %s: HTTP %s: %s", method, url, resp.Status, msg)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, url, err)
	}
	return nil
}

// withTicket adds ?ticket= to a WebSocket URL.
func withTicket(wsURL, ticket string) string {
	if ticket == "" {
		return wsURL
	}
	return wsURL + "?ticket=" + url.QueryEscape(ticket)
}

// rssSampler reads process_resident_memory_bytes from the node's /metrics every interval.
type rssSampler struct {
	url, token string
	client     *http.Client

	mu      sync.Mutex
	samples []rssSample
	err     string // why sampling failed ("" while it works)
}

type rssSample struct {
	atNs  int64 // since loadgen.base
	bytes float64
}

func (s *rssSampler) run(ctx context.Context, every time.Duration, since func() int64) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		v, err := s.read(ctx)
		s.mu.Lock()
		if err != nil {
			if ctx.Err() == nil && s.err == "" {
				s.err = err.Error()
			}
		} else {
			s.samples = append(s.samples, rssSample{atNs: since(), bytes: v})
		}
		s.mu.Unlock()
		if err != nil && len(s.samples) == 0 && ctx.Err() == nil {
			return // not available on this server: stop asking
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *rssSampler) read(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return 0, err
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", s.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: HTTP %s (a metrics token is given with -metrics-token)", s.url, resp.Status)
	}
	return parseRSS(body)
}

// parseRSS finds process_resident_memory_bytes in a Prometheus text scrape.
func parseRSS(scrape []byte) (float64, error) {
	for line := range strings.SplitSeq(string(scrape), "\n") {
		if v, ok := strings.CutPrefix(line, "process_resident_memory_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("process_resident_memory_bytes %q: %w", v, err)
			}
			return f, nil
		}
	}
	return 0, errors.New("no process_resident_memory_bytes in /metrics")
}

// loadgenMemory is the node's resident memory during a run.
type loadgenMemory struct {
	PeakBytes   float64 `json:"peak_bytes,omitempty"`   // the largest sample of the whole run
	SteadyBytes float64 `json:"steady_bytes,omitempty"` // the median sample of the measured window
	Samples     int     `json:"samples"`
	Error       string  `json:"error,omitempty"`
}

// summary computes the peak over every sample and the median over [from, to).
func (s *rssSampler) summary(from, to int64) *loadgenMemory {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &loadgenMemory{Samples: len(s.samples), Error: s.err}
	var window []float64
	for _, x := range s.samples {
		m.PeakBytes = max(m.PeakBytes, x.bytes)
		if x.atNs >= from && x.atNs < to {
			window = append(window, x.bytes)
		}
	}
	if len(window) > 0 {
		slices.Sort(window)
		m.SteadyBytes = window[len(window)/2]
	}
	if len(s.samples) > 0 {
		m.Error = ""
	}
	return m
}
