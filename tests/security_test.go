package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/redrive-go/redrive"
	"github.com/redrive-go/redrive/internal/redistest"
)

// TestSecurityTLS: redrive works through a caller's client that speaks TLS
// (with client certificates) to a redis-server of the test's own, started
// with a CA, server and client certificate generated here.
func TestSecurityTLS(t *testing.T) {
	if !secRedisHasTLS(t) {
		t.Skip("this redis-server was built without TLS support")
	}
	ctx := context.Background()
	dir := t.TempDir()
	ca, caKey := secCert(t, dir, "ca", nil, nil)
	secCert(t, dir, "server", ca, caKey)
	secCert(t, dir, "client", ca, caKey)
	tlsPort := redistest.FreePort(t)
	redistest.StartServer(t, redistest.ServerOptions{ExtraArgs: []string{
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", filepath.Join(dir, "server.crt"),
		"--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"),
		"--tls-auth-clients", "yes",
	}})
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	keyPair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		t.Fatal(err)
	}

	client := redis.NewClient(&redis.Options{Addr: tlsAddr, TLSConfig: &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{keyPair}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12,
	}})
	t.Cleanup(func() { _ = client.Close() })
	app := startFlowApp(t, client, "tls-"+watermill.NewShortUUID(), flowOptions{})
	app.runAllPaths([]byte(" over TLS"))
	app.checkStreamsDecode()

	// The port really is TLS, and really checks client certificates.
	plain := redis.NewClient(&redis.Options{Addr: tlsAddr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil {
		t.Error("a plain-text client talked to the TLS port")
	}
	noCert := redis.NewClient(&redis.Options{Addr: tlsAddr, MaxRetries: -1, TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}})
	defer noCert.Close()
	if err := noCert.Ping(ctx).Err(); err == nil {
		t.Error("a client without a certificate was let in")
	}
}

// secRedisHasTLS reports whether redis-server was built with TLS: one that
// was fails at once to configure TLS from certificate files that do not
// exist. (Any other outcome, within 5 s, means no TLS; the probe process is
// killed.)
func secRedisHasTLS(t *testing.T) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	missing := filepath.Join(t.TempDir(), "missing")
	out, _ := exec.CommandContext(ctx, "redis-server", "--port", "0", "--bind", "127.0.0.1", "--save", "",
		"--tls-port", strconv.Itoa(redistest.FreePort(t)),
		"--tls-cert-file", missing, "--tls-key-file", missing, "--tls-ca-cert-file", missing).CombinedOutput()
	return strings.Contains(string(out), "Failed to configure TLS")
}

// secCert writes name.crt and name.key (PEM) into dir: a CA when parent is
// nil, else a certificate for 127.0.0.1 signed by parent.
func secCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "redrive test " + name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
		parent, parentKey = tmpl, key
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, block := range map[string]*pem.Block{
		name + ".crt": {Type: "CERTIFICATE", Bytes: der},
		name + ".key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key
}

// TestSecurityAuth: with requirepass, redrive works through a caller's
// client that has the password, and one without it (or with a wrong one)
// gets a clear error from Publish and Subscribe, not a hang or a crash.
func TestSecurityAuth(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	password := watermill.NewShortUUID()
	if err := srv.Client(t).ConfigSet(ctx, "requirepass", password).Err(); err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password})
	t.Cleanup(func() { _ = client.Close() })
	app := startFlowApp(t, client, "auth-"+watermill.NewShortUUID(), flowOptions{})
	app.runAllPaths([]byte(" with AUTH"))

	for name, c := range map[string]struct{ password, want string }{
		"no password":    {"", "NOAUTH"},
		"wrong password": {"wrong", "WRONGPASS"},
	} {
		bad := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: c.password, MaxRetries: -1})
		pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: bad}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish("auth-topic", message.NewMessage(watermill.NewUUID(), nil)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Publish: %v, want %s", name, err, c.want)
		}
		sub, err := redrive.NewSubscriber(redrive.SubscriberConfig{Client: bad, ConsumerGroup: "g"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.Subscribe(ctx, "auth-topic"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Subscribe: %v, want %s", name, err, c.want)
		}
		_ = sub.Close()
		_ = pub.Close()
		_ = bad.Close()
	}
	if n, err := client.Exists(ctx, "auth-topic").Result(); err != nil || n != 0 {
		t.Errorf("unauthenticated clients created auth-topic (%d, %v)", n, err)
	}
}

// secLogger keeps every log line, at every level, as text.
type secLogger struct {
	mu     *sync.Mutex
	lines  *[]string
	levels map[string]int
	fields watermill.LogFields
}

func newSecLogger() *secLogger {
	return &secLogger{mu: &sync.Mutex{}, lines: &[]string{}, levels: map[string]int{}}
}

func (l *secLogger) log(level, msg string, err error, fields watermill.LogFields) {
	line := fmt.Sprintf("%s %s err=%v %v", level, msg, err, l.fields.Add(fields))
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.lines = append(*l.lines, line)
	l.levels[level]++
}

func (l *secLogger) Error(msg string, err error, fields watermill.LogFields) {
	l.log("error", msg, err, fields)
}
func (l *secLogger) Info(msg string, fields watermill.LogFields)  { l.log("info", msg, nil, fields) }
func (l *secLogger) Debug(msg string, fields watermill.LogFields) { l.log("debug", msg, nil, fields) }
func (l *secLogger) Trace(msg string, fields watermill.LogFields) { l.log("trace", msg, nil, fields) }
func (l *secLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return &secLogger{mu: l.mu, lines: l.lines, levels: l.levels, fields: l.fields.Add(fields)}
}

// TestSecurityLogsNeverContainPayloads runs publish, subscribe, retries,
// poison (from the middleware and for an undecodable entry), delayed
// messages, nacks and fan-out with a logger that records everything down to
// Trace, and checks that no line holds a payload, in any spelling.
func TestSecurityLogsNeverContainPayloads(t *testing.T) {
	ctx := context.Background()
	client := redistest.NewClient(t)
	logger := newSecLogger()
	secret := "SECRET-PAYLOAD-" + watermill.NewUUID()
	topic := redistest.RandomTopic("logs-")
	deleteFlowKeys(t, client, topic)

	app := startFlowApp(t, client, topic, flowOptions{Logger: logger})
	app.runAllPaths([]byte(secret))

	// An entry the subscriber cannot decode (corrupt metadata), carrying
	// the secret as its payload: logged as an error, poisoned.
	if err := client.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: map[string]interface{}{
		redrive.UUIDHeaderKey: watermill.NewUUID(), "payload": secret, "metadata": "\xc1" + secret,
	}}).Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, waitTimeout, func() bool {
		n, _ := client.XLen(ctx, app.poison).Result()
		return n == 3
	}, "the undecodable entry poisoned")

	// Nacks and fan-out, outside a router.
	sub := newSubscriber(t, redrive.SubscriberConfig{Client: client, ConsumerGroup: "nacks", NackResendSleep: redrive.NoSleep}, logger)
	msgs := subscribe(t, sub, topic+"-nacks")
	fan := newSubscriber(t, redrive.SubscriberConfig{Client: client}, logger)
	fanMsgs := collect(subscribe(t, fan, topic+"-nacks"))
	deleteFlowKeys(t, client, topic+"-nacks")
	pub, err := redrive.NewPublisher(redrive.PublisherConfig{Client: client}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(topic+"-nacks", message.NewMessage(watermill.NewUUID(), []byte(secret))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		select {
		case m := <-msgs:
			if i < 2 {
				m.Nack()
			} else {
				m.Ack()
			}
		case <-time.After(waitTimeout):
			t.Fatal("no redelivery after a nack")
		}
	}
	fanMsgs.waitUnique(t, 1)
	_ = sub.Close()
	_ = fan.Close()

	logger.mu.Lock()
	defer logger.mu.Unlock()
	t.Logf("%d log lines: %v", len(*logger.lines), logger.levels)
	if logger.levels["trace"] == 0 || logger.levels["error"] == 0 {
		t.Errorf("expected trace and error lines among %v: the flows did not log what they should", logger.levels)
	}
	needles := []string{secret, hex.EncodeToString([]byte(secret)), strings.Trim(fmt.Sprint([]byte(secret)), "[]")}
	for _, line := range *logger.lines {
		for _, n := range needles {
			if strings.Contains(line, n) {
				t.Errorf("a log line holds the payload: %.300s", line)
			}
		}
	}
}
