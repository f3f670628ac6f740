package scripts

import "testing"

func TestDeleteIdleConsumer(t *testing.T) {
	ctx, client, k := setup(t)
	stream := k.key("s")
	streamWithGroup(t, client, stream, map[string]interface{}{"n": "1"})
	readAs(t, client, stream, "busy")
	if err := client.XGroupCreateConsumer(ctx, stream, "g", "idle").Err(); err != nil {
		t.Fatal(err)
	}

	deleted, err := DeleteIdleConsumer.Run(ctx, client, DeleteIdleConsumerArgs{Stream: stream, Group: "g", Consumer: "busy"})
	if err != nil || deleted {
		t.Errorf("consumer with a pending entry: deleted = %v, %v; want false", deleted, err)
	}
	deleted, err = DeleteIdleConsumer.Run(ctx, client, DeleteIdleConsumerArgs{Stream: stream, Group: "g", Consumer: "idle"})
	if err != nil || !deleted {
		t.Errorf("consumer with nothing pending: deleted = %v, %v; want true", deleted, err)
	}
	consumers, err := client.XInfoConsumers(ctx, stream, "g").Result()
	if err != nil || len(consumers) != 1 || consumers[0].Name != "busy" {
		t.Errorf("consumers = %+v, %v; want only busy", consumers, err)
	}
}
