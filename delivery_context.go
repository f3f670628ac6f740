package redrive

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// delivery is one handing-out of a pending entry as a message. It is also
// the message's context: its own cancellation (settled, given back, or
// CloseTimeout) over the Subscribe context's values, plus the Delivery that
// DeliveryOf finds. One allocation holds all three.
type delivery struct {
	// Context is the cancellable context the message's context is; Value
	// adds the Delivery. Contexts derived from a delivery see the embedded
	// context's cancellation directly (no goroutine per derived context):
	// Done and the context package's own lookup pass through.
	context.Context
	cancel context.CancelFunc
	info   Delivery
	entry  *pendingEntry
	msg    *message.Message
}

func (d *delivery) Value(key any) any {
	if _, ok := key.(deliveryContextKey); ok {
		return &d.info
	}
	return d.Context.Value(key)
}
