package main

import "testing"

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"160MiB": 160 << 20, "1GiB": 1 << 30, "512M": 512 << 20, "2048": 2048,
		"1.5GB": 3 << 29, "0": 0, " 64 KiB ": 64 << 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "1TiB", "12 parsecs", "1e400", "9999999999GiB"} {
		if got, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q) = %d, want an error", bad, got)
		}
	}
}
