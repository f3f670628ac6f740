package redisinfo

import "testing"

func TestFieldAndVersion(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
	if got := Field(info, "redis_version"); got != "7.0.15" {
		t.Fatalf("Field(redis_version) = %q", got)
	}
	if got := Field(info, "redis"); got != "" {
		t.Fatalf("Field(redis) = %q, want no match on a prefix", got)
	}
	for v, want := range map[string][3]int{"7.0.15": {7, 0, 1}, "6.2": {6, 2, 1}, "7": {0, 0, 0}, "x.1.2": {0, 1, 0}, "": {0, 0, 0}} {
		major, minor, ok := Version(v)
		if ok != (want[2] == 1) || (ok && (major != want[0] || minor != want[1])) {
			t.Errorf("Version(%q) = %d, %d, %v; want %v", v, major, minor, ok, want)
		}
	}
}
