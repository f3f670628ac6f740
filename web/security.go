package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
)

// csrfCookie holds a random value per browser; a form's token is its HMAC
// under the handler's key, so a page from another site can neither read nor
// forge it.
const csrfCookie = "redrive_csrf"

// csrfField is the form field that carries the token.
const csrfField = "csrf"

// securityHeaders are sent with every response: only the console's own
// scripts and styles run, it is never framed, and no form posts elsewhere.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	"Referrer-Policy":        "same-origin",
	"Cache-Control":          "no-store",
}

func newCSRFKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return key, nil
}

// csrfToken returns the token for this browser's forms, setting its cookie
// first when it has none.
func (h *Handler) csrfToken(w http.ResponseWriter, r *http.Request, base string) string {
	value := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 64 {
		value = c.Value
	} else {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		value = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{
			Name: csrfCookie, Value: value, Path: base + "/", HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
		})
	}
	return h.sign(value)
}

func (h *Handler) sign(value string) string {
	mac := hmac.New(sha256.New, h.csrfKey)
	mac.Write([]byte("redrive-web-csrf:" + value))
	return hex.EncodeToString(mac.Sum(nil))
}

// errCSRF is a POST without a valid token.
var errCSRF = errors.New("the form's security token is missing or stale: reload the page and try again")

// checkPost refuses a cross-site POST (by its Origin and Sec-Fetch-Site
// headers, when the browser sends them) and a POST whose token does not
// match its cookie. The form must be parsed already.
func (h *Handler) checkPost(r *http.Request) error {
	if err := h.crossOrigin.Check(r); err != nil {
		return errors.New("cross-origin request refused: actions must come from the console's own pages")
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil {
		return errCSRF
	}
	got := r.PostForm.Get(csrfField)
	if got == "" || !hmac.Equal([]byte(got), []byte(h.sign(c.Value))) {
		return errCSRF
	}
	return nil
}
