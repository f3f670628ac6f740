package admin

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The JSON of a result is flat, names a dry run's count would_*, and reads
// back into the same result.
func TestChangeResultJSON(t *testing.T) {
	base := ChangeResult{Stream: "s", Scanned: 5, Matched: 4, Skipped: 1, Gone: 1, Failed: 1,
		NotFound: []string{"9-0"}, Messages: []Outcome{{ID: "1-0", Status: StatusRequeued}}}
	dry := base
	dry.DryRun = true
	for _, tc := range []struct {
		name      string
		res, back any
		key, not  string
	}{
		{"requeue", RequeueResult{ChangeResult: base, Requeued: 2}, &RequeueResult{}, "requeued", "would_requeue"},
		{"requeue dry run", RequeueResult{ChangeResult: dry, Requeued: 2}, &RequeueResult{}, "would_requeue", "requeued"},
		{"purge", PurgeResult{ChangeResult: base, Purged: 2}, &PurgeResult{}, "purged", "would_purge"},
		{"purge dry run", PurgeResult{ChangeResult: dry, Purged: 2}, &PurgeResult{}, "would_purge", "purged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.res)
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(b, &fields); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			if string(fields[tc.key]) != "2" {
				t.Errorf("%s: %s is %s, want 2", b, tc.key, fields[tc.key])
			}
			for _, k := range []string{tc.not, "ChangeResult"} {
				if _, ok := fields[k]; ok {
					t.Errorf("%s: has %s", b, k)
				}
			}
			if string(fields["skipped"]) != "1" || string(fields["stream"]) != `"s"` {
				t.Errorf("%s: shared fields are not flat", b)
			}
			if err := json.Unmarshal(b, tc.back); err != nil {
				t.Fatal(err)
			}
			if got := reflect.ValueOf(tc.back).Elem().Interface(); !reflect.DeepEqual(got, tc.res) {
				t.Errorf("read back %+v, want %+v", got, tc.res)
			}
		})
	}
}
