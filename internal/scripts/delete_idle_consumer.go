package scripts

import _ "embed"

//go:embed delete_idle_consumer.lua
var deleteIdleConsumerSource string

// DeleteIdleConsumerArgs are the arguments of delete_idle_consumer.lua.
type DeleteIdleConsumerArgs struct {
	Stream   string
	Group    string
	Consumer string
}

// DeleteIdleConsumer removes a consumer from a group only when it has no
// pending entries. Its reply is true when the consumer was deleted, false
// when it still holds entries.
var DeleteIdleConsumer = newScript("delete_idle_consumer", deleteIdleConsumerSource,
	func(a DeleteIdleConsumerArgs) ([]string, []interface{}, error) {
		return []string{a.Stream}, []interface{}{a.Group, a.Consumer}, nil
	},
	replyBool)
