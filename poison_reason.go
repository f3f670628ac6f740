package redrive

// PoisonReason is a short, stable code for why a message was poisoned. It is
// written in MetadataPoisonReason next to the text of Watermill's
// reason_poisoned, which says the same for a person (with the error that
// failed); programs (metrics, alerts, filters) read the code.
type PoisonReason string

// Poison reasons. Every place that poisons a message writes one of them.
const (
	// PoisonReasonMaxRetries: the retry middleware ran out of retries
	// (RetryConfig.MaxRetries).
	PoisonReasonMaxRetries PoisonReason = "max_retries"
	// PoisonReasonMaxElapsedTime: the retry middleware kept retrying for
	// RetryConfig.MaxElapsedTime.
	PoisonReasonMaxElapsedTime PoisonReason = "max_elapsed_time"
	// PoisonReasonPermanent: the handler's error was marked permanent, or
	// RetryConfig.ShouldRetry refused it.
	PoisonReasonPermanent PoisonReason = "permanent"
	// PoisonReasonCrashLoop: the Subscriber delivered the entry
	// SubscriberConfig.MaxDeliveries times and it was never acked or nacked
	// (its handler probably kills the process).
	PoisonReasonCrashLoop PoisonReason = "crash_loop"
	// PoisonReasonUndecodable: the Subscriber could not decode the entry into
	// a message.
	PoisonReasonUndecodable PoisonReason = "undecodable"
	// PoisonReasonOther stands for a reason none of the above describes, such
	// as a message another tool put in a poison topic.
	PoisonReasonOther PoisonReason = "other"
)

// MetadataPoisonReason is the metadata key of a poisoned message's
// PoisonReason. Messages poisoned by versions that did not write it have only
// reason_poisoned; middleware.PoisonReasonOf reads both.
const MetadataPoisonReason = "redrive_poison_reason"

// PoisonReasons returns every PoisonReason, in the order documented.
func PoisonReasons() []PoisonReason {
	return []PoisonReason{
		PoisonReasonMaxRetries,
		PoisonReasonMaxElapsedTime,
		PoisonReasonPermanent,
		PoisonReasonCrashLoop,
		PoisonReasonUndecodable,
		PoisonReasonOther,
	}
}

// Known reports whether r is one of the PoisonReasons.
func (r PoisonReason) Known() bool {
	for _, k := range PoisonReasons() {
		if r == k {
			return true
		}
	}
	return false
}
