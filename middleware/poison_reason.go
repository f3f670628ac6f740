package middleware

import (
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	wmiddleware "github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/redrive-go/redrive"
)

// PoisonReasonOf returns why a poisoned message was poisoned: its
// redrive.MetadataPoisonReason, or, for a message poisoned before that key
// was written (or with a code this version does not know), the code its
// reason_poisoned text stands for (see PoisonReasonFromText). A message that
// was not poisoned gives "".
func PoisonReasonOf(md message.Metadata) redrive.PoisonReason {
	if code := redrive.PoisonReason(md.Get(redrive.MetadataPoisonReason)); code.Known() {
		return code
	}
	text := md.Get(wmiddleware.ReasonForPoisonedKey)
	if text == "" {
		return ""
	}
	return PoisonReasonFromText(text)
}

// reasonTexts maps the start of each reason_poisoned text redrive writes to
// its code.
var reasonTexts = []struct {
	prefix string
	code   redrive.PoisonReason
}{
	{ReasonMaxRetries, redrive.PoisonReasonMaxRetries},
	{ReasonMaxElapsedTime, redrive.PoisonReasonMaxElapsedTime},
	{ReasonPermanent, redrive.PoisonReasonPermanent},
	{redrive.ReasonExceededMaxDeliveries, redrive.PoisonReasonCrashLoop},
	{redrive.ReasonUndecodable, redrive.PoisonReasonUndecodable},
}

// PoisonReasonFromText returns the code a reason_poisoned text written by
// redrive stands for, or redrive.PoisonReasonOther for any other text. It is
// for messages poisoned before redrive wrote the code; PoisonReasonOf calls
// it when the code is missing.
func PoisonReasonFromText(text string) redrive.PoisonReason {
	for _, r := range reasonTexts {
		if strings.HasPrefix(text, r.prefix) {
			return r.code
		}
	}
	return redrive.PoisonReasonOther
}
