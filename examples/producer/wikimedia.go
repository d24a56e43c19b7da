package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/clickstreamkit/clickstream"
	"github.com/clickstreamkit/clickstream/examples/internal/replay"
	"github.com/clickstreamkit/clickstream/examples/internal/wikimedia"
)

var errEnough = errors.New("enough events")

func wikimediaCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("wikimedia", flag.ContinueOnError)
	url := fs.String("url", "https://stream.wikimedia.org/v2/stream/recentchange", "server-sent-events URL of recent changes")
	brokers := fs.String("brokers", defaultBrokers(), "comma-separated Kafka bootstrap brokers")
	topic := fs.String("topic", "events_raw", "topic to produce to")
	out := fs.String("o", "", "write JSON lines to this file (- for stdout) instead of Kafka")
	maxEvents := fs.Int64("max", 0, "stop after this many events; 0 = never")
	lastID := fs.String("last-event-id", "", "resume the stream after this event id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	s, err := wikimedia.NewStream(*url, wikimedia.WithLogger(log), wikimedia.WithLastEventID(*lastID))
	if err != nil {
		return err
	}

	var (
		send     func(*clickstream.Event) error
		closeOut func() error
		count    func() (delivered, failed int64)
	)
	if *out != "" {
		f := os.Stdout
		if *out != "-" {
			if f, err = os.Create(*out); err != nil {
				return err
			}
		}
		w := bufio.NewWriter(f)
		var buf []byte
		var n int64
		send = func(e *clickstream.Event) error {
			buf = append(clickstream.AppendJSON(buf[:0], e), '\n')
			_, err := w.Write(buf)
			n++
			return err
		}
		closeOut = func() error {
			err := w.Flush()
			if f != os.Stdout {
				err = errors.Join(err, f.Close())
			}
			return err
		}
		count = func() (int64, int64) { return n, 0 }
	} else {
		bs, err := splitBrokers(*brokers)
		if err != nil {
			return err
		}
		p, err := replay.NewSarama(bs, *topic, nil)
		if err != nil {
			return err
		}
		send = func(e *clickstream.Event) error {
			return p.Send(ctx, replay.Message{Key: []byte(e.UserID), Value: clickstream.AppendJSON(nil, e), Timestamp: time.Now()})
		}
		closeOut = p.Close
		count = p.Counts
	}

	var c wikimedia.Counts
	report := func(msg string) {
		delivered, failed := count()
		log.Info(msg, "messages", c.Messages.Load(), "changes", c.Changes.Load(), "mapped", c.Mapped.Load(),
			"events", c.Events.Load(), "delivered", delivered, "errors", failed, "last_event_id", s.LastEventID())
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report("wikimedia progress")
			case <-done:
				return
			}
		}
	}()
	log.Info("streaming", "url", *url, "to", map[bool]string{true: *out, false: *topic}[*out != ""])
	err = wikimedia.Feed(ctx, s, func(e *clickstream.Event) error {
		if err := send(e); err != nil {
			return err
		}
		if *maxEvents > 0 && c.Events.Load()+1 >= *maxEvents {
			return errEnough
		}
		return nil
	}, &c)
	close(done)
	if errors.Is(err, errEnough) || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil // enough, or interrupted: what was sent is flushed by closeOut
	}
	err = errors.Join(err, closeOut())
	report("wikimedia finished")
	return err
}
