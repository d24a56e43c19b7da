package wikimedia

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ServerEvent is one server-sent event.
type ServerEvent struct {
	ID   string // the last event id seen on the stream so far (the "id" field)
	Type string // the "event" field; "message" by default
	Data []byte // the "data" lines joined with "\n"
}

// ErrStatus is wrapped by the error Run returns when the server answers with
// a status that retrying will not fix (4xx other than 408 and 429).
var ErrStatus = errors.New("wikimedia: unexpected HTTP status")

// DefaultUserAgent is sent unless [WithUserAgent] says otherwise; Wikimedia
// asks clients to identify themselves.
const DefaultUserAgent = "clickstream-example/0.1 (https://github.com/clickstreamkit/clickstream)"

// Stream reads a server-sent-events URL. See the package documentation.
type Stream struct {
	url         string
	client      *http.Client
	log         *slog.Logger
	minBackoff  time.Duration
	maxBackoff  time.Duration
	idle        time.Duration
	userAgent   string
	lastEventID string
	maxLine     int
}

// Option configures a [Stream].
type Option func(*Stream)

// WithHTTPClient sets the client. Default: a client without a timeout (the
// stream never ends), with the default transport.
func WithHTTPClient(c *http.Client) Option { return func(s *Stream) { s.client = c } }

// WithLogger sets where reconnections are logged. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(s *Stream) { s.log = l } }

// WithBackoff sets the first and the largest delay before reconnecting; the
// delay doubles (with ±20 % jitter) after each failed connection and resets
// after one that delivered an event. A "retry" field from the server replaces
// min. Default: 1s, 30s.
func WithBackoff(min, max time.Duration) Option {
	return func(s *Stream) { s.minBackoff, s.maxBackoff = min, max }
}

// WithIdleTimeout drops and reopens a connection on which nothing (not even a
// comment) arrived for d. Default: 60s; 0 disables.
func WithIdleTimeout(d time.Duration) Option { return func(s *Stream) { s.idle = d } }

// WithUserAgent sets the User-Agent header. Default: [DefaultUserAgent].
func WithUserAgent(ua string) Option { return func(s *Stream) { s.userAgent = ua } }

// WithLastEventID makes the first connection resume after id, as a
// reconnection would. Default: none.
func WithLastEventID(id string) Option { return func(s *Stream) { s.lastEventID = id } }

// WithMaxLineBytes bounds one line of the stream; a longer one fails the
// connection. Default: 1 MiB.
func WithMaxLineBytes(n int) Option { return func(s *Stream) { s.maxLine = n } }

// NewStream checks its arguments and returns a stream; it connects to
// nothing until Run.
func NewStream(rawURL string, opts ...Option) (*Stream, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("wikimedia: url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("wikimedia: url %q: want http(s)://host/...", rawURL)
	}
	s := &Stream{url: rawURL, client: &http.Client{}, minBackoff: time.Second, maxBackoff: 30 * time.Second,
		idle: time.Minute, userAgent: DefaultUserAgent, maxLine: 1 << 20}
	for _, o := range opts {
		o(s)
	}
	switch {
	case s.client == nil:
		return nil, errors.New("wikimedia: nil HTTP client")
	case s.minBackoff <= 0 || s.maxBackoff < s.minBackoff:
		return nil, fmt.Errorf("wikimedia: backoff %v..%v: want 0 < min <= max", s.minBackoff, s.maxBackoff)
	case s.idle < 0:
		return nil, fmt.Errorf("wikimedia: idle timeout %v: want >= 0", s.idle)
	case s.maxLine < 64:
		return nil, fmt.Errorf("wikimedia: max line %d: want at least 64", s.maxLine)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// LastEventID returns the id of the last event delivered (or given by
// [WithLastEventID]); a later Run resumes after it.
func (s *Stream) LastEventID() string { return s.lastEventID }

// Run connects and calls fn for every event, in order, reconnecting (with
// Last-Event-ID, after a back-off) whenever the connection ends or fails. It
// returns when ctx ends (ctx.Err()), when fn returns an error (that error), or
// when the server refuses the request for good (wrapping [ErrStatus]). fn may
// keep ev.Data.
func (s *Stream) Run(ctx context.Context, fn func(ev ServerEvent) error) error {
	base := s.minBackoff
	delay := base
	for {
		delivered, retry, err := s.connect(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var fe fnError
		if errors.As(err, &fe) {
			return fe.err
		}
		if errors.Is(err, ErrStatus) {
			return err
		}
		if retry > 0 {
			base = retry
			delay = max(delay, retry)
		}
		if delivered {
			delay = base
		}
		wait := jitter(delay)
		s.log.Warn("wikimedia stream: reconnecting", "err", err, "after", wait, "last_event_id", s.lastEventID)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay = min(2*delay, s.maxBackoff)
	}
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// fnError marks an error of the caller's fn, which ends Run.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// connect runs one connection. It reports whether it delivered an event and
// the server's retry delay (0 if none), and why the connection ended.
func (s *Stream) connect(ctx context.Context, fn func(ServerEvent) error) (delivered bool, retry time.Duration, err error) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, s.url, nil)
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", s.userAgent)
	if s.lastEventID != "" {
		req.Header.Set("Last-Event-ID", s.lastEventID)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		err := fmt.Errorf("%s", resp.Status)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			err = fmt.Errorf("%w: %s", ErrStatus, resp.Status)
		}
		return false, 0, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, 0, fmt.Errorf("%w: content type %q, want text/event-stream", ErrStatus, resp.Header.Get("Content-Type"))
	}
	var watchdog *time.Timer
	if s.idle > 0 {
		errIdle := fmt.Errorf("nothing received for %v", s.idle)
		watchdog = time.AfterFunc(s.idle, func() { cancel(errIdle) })
		defer watchdog.Stop()
	}
	p := parser{lastID: s.lastEventID}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), s.maxLine)
	sc.Split(scanLines)
	for sc.Scan() {
		if watchdog != nil {
			watchdog.Reset(s.idle)
		}
		line := sc.Bytes()
		ev, ok := p.line(line)
		if p.retry > 0 {
			retry = p.retry
		}
		if !ok {
			if len(line) == 0 {
				s.lastEventID = p.lastID // an id-only event still moves the resume point
			}
			continue
		}
		if err := fn(ev); err != nil {
			return delivered, retry, fnError{err}
		}
		delivered = true
		s.lastEventID = ev.ID
	}
	err = sc.Err()
	if c := context.Cause(cctx); c != nil && ctx.Err() == nil {
		err = c // the watchdog
	}
	if err == nil {
		err = io.ErrUnexpectedEOF // the server ended the stream
	}
	return delivered, retry, err
}

// parser holds the EventSource parsing state of one connection.
type parser struct {
	data      bytes.Buffer
	eventType string
	lastID    string
	retry     time.Duration
}

// line processes one line (without its end) and returns the event a blank
// line dispatches.
func (p *parser) line(l []byte) (ServerEvent, bool) {
	if len(l) == 0 {
		if p.data.Len() == 0 {
			p.eventType = ""
			return ServerEvent{}, false
		}
		data := bytes.Clone(bytes.TrimSuffix(p.data.Bytes(), []byte{'\n'}))
		typ := p.eventType
		if typ == "" {
			typ = "message"
		}
		p.data.Reset()
		p.eventType = ""
		return ServerEvent{ID: p.lastID, Type: typ, Data: data}, true
	}
	if l[0] == ':' {
		return ServerEvent{}, false // a comment
	}
	name, value := l, []byte(nil)
	if i := bytes.IndexByte(l, ':'); i >= 0 {
		name, value = l[:i], l[i+1:]
		value = bytes.TrimPrefix(value, []byte{' '})
	}
	switch string(name) {
	case "data":
		p.data.Write(value)
		p.data.WriteByte('\n')
	case "event":
		p.eventType = string(value)
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.lastID = string(value)
		}
	case "retry":
		if ms, err := strconv.ParseUint(string(value), 10, 31); err == nil && isDigits(value) {
			p.retry = time.Duration(ms) * time.Millisecond
		}
	}
	return ServerEvent{}, false
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// scanLines splits at "\r\n", "\n" or "\r". An unterminated last line is
// dropped: the spec discards an event cut off by the end of the stream, and
// a partial line belongs to one.
func scanLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data, "\r\n")
	if i < 0 {
		if atEOF {
			return len(data), nil, nil
		}
		return 0, nil, nil
	}
	if data[i] == '\n' {
		return i + 1, data[:i], nil
	}
	if i+1 < len(data) {
		if data[i+1] == '\n' {
			return i + 2, data[:i], nil
		}
		return i + 1, data[:i], nil
	}
	if atEOF {
		return i + 1, data[:i], nil
	}
	return 0, nil, nil // a "\r": wait to see whether "\n" follows
}
