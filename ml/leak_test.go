package ml

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"
)

// rssKB reads the resident set size of this process.
func rssKB(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := bytes.Fields(sc.Bytes()); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.Atoi(string(f[1]))
			return kb
		}
	}
	t.Fatal("VmRSS not found")
	return 0
}

// Unpatched gotch leaks its C result slot on every tensor op (build/gotch/prepare.sh frees
// them): 100k predictions grew RSS by ~64 MB. The bound leaves room for allocator noise.
func TestPredictDoesNotLeakNativeMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("long: 100k predictions")
	}
	m, err := LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	texts := []string{"count me in for saturday", "where do we meet?"}
	for i := 0; i < 10_000; i++ { // warm up allocator pools and libtorch caches
		m.Predict(ctx, texts)
	}
	before := rssKB(t)
	for i := 0; i < 100_000; i++ {
		if _, err := m.Predict(ctx, texts); err != nil {
			t.Fatal(err)
		}
	}
	if grown := rssKB(t) - before; grown > 16*1024 {
		t.Fatalf("RSS grew by %d kB over 100k predictions: native memory leaks", grown)
	}
}
