package entryfields

import (
	"reflect"
	"testing"
)

func TestAppendPairsSortsByName(t *testing.T) {
	fields := map[string]interface{}{"payload": []byte("p"), "_watermill_message_uuid": "u", "metadata": ""}
	want := []interface{}{"ttl", "_watermill_message_uuid", "u", "metadata", "", "payload", []byte("p")}
	// Map order differs between iterations; the result must not.
	for range 20 {
		if got := AppendPairs([]interface{}{"ttl"}, fields); !reflect.DeepEqual(got, want) {
			t.Fatalf("AppendPairs = %v, want %v", got, want)
		}
	}
}

func TestNamesOfEmpty(t *testing.T) {
	if got := Names(nil); len(got) != 0 {
		t.Fatalf("Names(nil) = %v, want none", got)
	}
}
