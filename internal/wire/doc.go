// Package wire holds redrive's wire format, shared by the Subscriber and
// Publisher (package redrive) and the inspection and redrive tools (package
// admin) so that all of them read and write Redis the same way: how a stream
// entry becomes a message, how a delayed message is encoded as a sorted-set
// member, and the keys redrive keeps beside a topic's stream.
package wire
