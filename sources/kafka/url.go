package kafka

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// URL is a source address of the form
//
//	kafka://HOST:PORT[,HOST:PORT...]/TOPIC?group=NAME[&bounded=true][&start=oldest|newest][&batch=N]
type URL struct {
	Brokers []string
	Topic   string
	Group   string  // required
	Bounded bool    // WithBounded; default false
	Start   StartAt // WithStartAt; default Oldest
	Batch   int     // WithBatch; 0 keeps the default
}

// ParseURL parses a kafka:// source address. Unknown parameters are errors,
// so that a misspelt one is not silently ignored.
func ParseURL(raw string) (URL, error) {
	var u URL
	// Not url.Parse: it rejects a list of IPv6 brokers as a bad port.
	rest, ok := strings.CutPrefix(raw, "kafka://")
	if !ok {
		return u, fmt.Errorf("kafka: url %q: want kafka://HOST:PORT/TOPIC?group=NAME", raw)
	}
	hosts, rest, _ := strings.Cut(rest, "/")
	path, query, _ := strings.Cut(rest, "?")
	for b := range strings.SplitSeq(hosts, ",") {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || strings.ContainsAny(host, "@#?") {
			return u, fmt.Errorf("kafka: url %q: broker %q: want HOST:PORT", raw, b)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return u, fmt.Errorf("kafka: url %q: broker %q: bad port", raw, b)
		}
		u.Brokers = append(u.Brokers, b)
	}
	topic, err := url.PathUnescape(path)
	if err != nil || topic == "" || strings.ContainsAny(topic, "/#") {
		return u, fmt.Errorf("kafka: url %q: want one topic as the path", raw)
	}
	u.Topic = topic
	q, err := url.ParseQuery(query)
	if err != nil {
		return u, fmt.Errorf("kafka: url %q: %w", raw, err)
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return u, fmt.Errorf("kafka: url %q: %s given %d times", raw, k, len(vs))
		}
		v := vs[0]
		switch k {
		case "group":
			u.Group = v
		case "bounded":
			if u.Bounded, err = strconv.ParseBool(v); err != nil {
				return u, fmt.Errorf("kafka: url %q: bounded=%q: want true or false", raw, v)
			}
		case "start":
			switch v {
			case "oldest":
				u.Start = Oldest
			case "newest":
				u.Start = Newest
			default:
				return u, fmt.Errorf("kafka: url %q: start=%q: want oldest or newest", raw, v)
			}
		case "batch":
			if u.Batch, err = strconv.Atoi(v); err != nil || u.Batch < 1 {
				return u, fmt.Errorf("kafka: url %q: batch=%q: want a positive integer", raw, v)
			}
		default:
			return u, fmt.Errorf("kafka: url %q: unknown parameter %q", raw, k)
		}
	}
	if u.Group == "" {
		return u, fmt.Errorf("kafka: url %q: group is required", raw)
	}
	return u, nil
}

// Options returns the options u sets.
func (u URL) Options() []Option {
	opts := []Option{WithStartAt(u.Start)}
	if u.Bounded {
		opts = append(opts, WithBounded())
	}
	if u.Batch > 0 {
		opts = append(opts, WithBatch(u.Batch))
	}
	return opts
}

// NewFromURL parses raw and returns New(u.Brokers, u.Topic, u.Group,
// u.Options()..., opts...): opts (a logger, a sarama config) come last and
// win.
func NewFromURL(raw string, opts ...Option) (*Source, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	return New(u.Brokers, u.Topic, u.Group, append(u.Options(), opts...)...)
}

// String formats u back as a kafka:// address.
func (u URL) String() string {
	q := url.Values{"group": {u.Group}}
	if u.Bounded {
		q.Set("bounded", "true")
	}
	if u.Start != Oldest {
		q.Set("start", u.Start.String())
	}
	if u.Batch > 0 {
		q.Set("batch", strconv.Itoa(u.Batch))
	}
	return (&url.URL{Scheme: "kafka", Host: strings.Join(u.Brokers, ","), Path: "/" + u.Topic, RawQuery: q.Encode()}).String()
}
