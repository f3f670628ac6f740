package redisinfo

import "testing"

func TestField(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
	if got := Field(info, "redis_version"); got != "7.0.15" {
		t.Fatalf("Field(redis_version) = %q", got)
	}
	if got := Field(info, "redis"); got != "" {
		t.Fatalf("Field(redis) = %q, want no match on a prefix", got)
	}
}
