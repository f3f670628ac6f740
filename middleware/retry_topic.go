package middleware

import (
	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys on published retries (DelayInPublisher, DelayDurable) and on
// the messages poisoned through RetryConfig.Publisher.
const (
	// MetadataOriginalUUID is the UUID the message had when it first failed.
	// A published copy gets a new UUID, so brokers that drop repeated message
	// IDs (NATS JetStream with TrackMsgId, others) accept it.
	MetadataOriginalUUID = "redrive_original_uuid"
	// MetadataOriginalTopic is the topic the handler failed on, before its
	// retries moved to the handler's retry topic.
	MetadataOriginalTopic = "redrive_original_topic"
	// MetadataOriginalHandler is the handler that failed.
	MetadataOriginalHandler = "redrive_original_handler"
)

// RetryHandlerSuffix ends the name of the handler that AddRetryHandler adds.
const RetryHandlerSuffix = "_retry"

// RetryTopic is the topic, <topic>_retry_<handler>, that published retries of handler's messages read
// from topic go to: only that handler reads it, so a retry never reaches the
// other handlers of topic. It uses no dot, which NATS stream names refuse.
func RetryTopic(topic, handler string) string {
	return topic + "_retry_" + handler
}

// AddRetryHandler adds to router the handler that reads handlerName's retry
// topic (RetryTopic(topic, handlerName)) with subscriber and runs handlerFunc,
// named handlerName+RetryHandlerSuffix. Call it next to
// router.AddConsumerHandler(handlerName, topic, subscriber, handlerFunc) when
// the retry middleware uses DelayInPublisher or DelayDurable. The retry
// middleware added to the router (AddMiddleware before both calls) wraps it
// too; a per-handler Retry must be added to the returned handler as well.
// The subscriber must deliver each message of the retry topic to one
// instance of the handler (a consumer group, queue group or durable).
func AddRetryHandler(router *message.Router, handlerName, topic string, subscriber message.Subscriber, handlerFunc message.NoPublishHandlerFunc) *message.Handler {
	return router.AddConsumerHandler(handlerName+RetryHandlerSuffix, RetryTopic(topic, handlerName), subscriber, handlerFunc)
}

// origin returns the topic and handler a message failed in: those of its
// first failure when it came back through their retry topic, else those the
// router put in its context.
func origin(msg *message.Message) (topic, handler string) {
	ctx := msg.Context()
	topic, handler = message.SubscribeTopicFromCtx(ctx), message.HandlerNameFromCtx(ctx)
	origTopic, origHandler := msg.Metadata.Get(MetadataOriginalTopic), msg.Metadata.Get(MetadataOriginalHandler)
	if origTopic != "" && origHandler != "" && topic == RetryTopic(origTopic, origHandler) {
		return origTopic, origHandler
	}
	return topic, handler
}
