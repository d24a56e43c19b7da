package kafka

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/clickstreamkit/clickstream/sources"
)

// consumeLoop joins the group again after each rebalance until the source
// closes. A configuration error stops it: Read then returns it.
func (s *Source) consumeLoop(ctx context.Context, c *conn) {
	defer close(c.loopDone)
	h := handler{s: s, c: c}
	wait := 100 * time.Millisecond
	for {
		err := c.group.Consume(ctx, []string{s.topic}, h)
		if ctx.Err() != nil || errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return
		}
		if err == nil {
			wait = 100 * time.Millisecond
			continue
		}
		var cfgErr sarama.ConfigurationError
		if errors.As(err, &cfgErr) {
			s.mu.Lock()
			s.fatal = err
			s.mu.Unlock()
			s.signal()
			return
		}
		s.log.Warn("kafka: consume failed, joining again", "err", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
		wait = min(2*wait, 10*time.Second)
	}
}

type handler struct {
	s *Source
	c *conn
}

func (h handler) Setup(sess sarama.ConsumerGroupSession) error {
	h.s.log.Info("kafka: session started", "member", sess.MemberID(),
		"generation", sess.GenerationID(), "claims", sess.Claims()[h.s.topic])
	return nil
}

func (h handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.s.log.Info("kafka: session ended", "member", sess.MemberID(), "generation", sess.GenerationID())
	return nil
}

// ConsumeClaim hands the claim's messages to Read in batches, each with the
// topic's partition count, the session's generation and whether it reaches
// the claim's high watermark (CaughtUp). A claim that starts at the high
// watermark sends a CaughtUp notice first, so that the reader learns of a
// partition with nothing to read. When the claim ends (a rebalance, a lost
// session) and the reader got anything from it, a notice included, it sends
// a Revoked notice and keeps the partition, session included, until the
// reader releases it: the reader can still commit.
func (h handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	s := h.s
	p := claim.Partition()
	start := claim.InitialOffset()
	if start < 0 { // no committed offset: the oldest or newest one
		if off, err := h.c.client.GetOffset(s.topic, p, start); err == nil {
			start = off
		}
	}
	partitions, generation := h.partitionCount(), int64(sess.GenerationID())
	batchOf := func(msgs []sources.Message, caughtUp bool) sources.Batch {
		return sources.Batch{Topic: s.topic, Partition: p, Messages: msgs,
			Partitions: partitions, Generation: generation, CaughtUp: caughtUp}
	}
	c := &claimState{sess: sess, claim: claim, next: start}
	end := int64(math.MaxInt64)
	atEnd := func() { // bounded: stop fetching what would be dropped
		h.c.group.Pause(map[string][]int32{s.topic: {p}})
	}
	s.mu.Lock()
	s.owned[p] = c
	if s.o.bounded {
		end = s.ends[p] // 0 for a partition added since: nothing to read
		if start >= end {
			s.markDoneLocked(p)
		}
	}
	s.mu.Unlock()
	if start >= end {
		atEnd()
	}
	s.log.Debug("kafka: partition claimed", "partition", p, "start", start)
	defer func() {
		s.mu.Lock()
		if s.owned[p] == c {
			delete(s.owned, p)
		}
		s.mu.Unlock()
	}()

	msgs := claim.Messages()
	ended := sess.Context().Done()
	delivered := false
	// The claim's high watermark is the partition's end when the claim was
	// made, until a fetch brings a newer one.
	if start >= 0 && start >= claim.HighWaterMarkOffset() {
		select {
		case s.batches <- batchOf(nil, true):
			delivered = true
		case <-ended:
			return h.revoke(p, delivered)
		case <-s.closing:
			return nil
		}
	}
	for {
		var first *sarama.ConsumerMessage
		select {
		case m, ok := <-msgs:
			if !ok {
				return h.revoke(p, delivered)
			}
			first = m
		case <-ended:
			return h.revoke(p, delivered)
		case <-s.closing:
			return nil
		}
		if first.Offset >= end {
			atEnd()
			continue
		}
		batch := make([]sources.Message, 0, min(s.o.batch, len(msgs)+1))
		batch = append(batch, message(first))
		closed, full := false, first.Offset+1 >= end
		// take adds m to the batch; it says whether the batch is complete.
		take := func(m *sarama.ConsumerMessage, ok bool) bool {
			switch {
			case !ok:
				closed = true
			case m.Offset >= end:
				full = true
			default:
				batch = append(batch, message(m))
				full = m.Offset+1 >= end
			}
			return closed || full || len(batch) >= s.o.batch
		}
		var timer *time.Timer
		var timeout <-chan time.Time
		if s.o.maxWait > 0 && !full && len(batch) < s.o.batch {
			timer = time.NewTimer(s.o.maxWait)
			timeout = timer.C
		}
	gather:
		for !full && len(batch) < s.o.batch {
			select { // what has arrived already
			case m, ok := <-msgs:
				if take(m, ok) {
					break gather
				}
				continue
			default:
			}
			if timeout == nil {
				break
			}
			select {
			case m, ok := <-msgs:
				if take(m, ok) {
					break gather
				}
			case <-timeout:
				break gather
			case <-ended:
				break gather
			case <-s.closing:
				return nil
			}
		}
		if timer != nil {
			timer.Stop()
		}
		if full {
			atEnd()
		}
		// The high watermark is that of the latest fetch, which brought the
		// batch's last message or later ones.
		caughtUp := batch[len(batch)-1].Offset+1 >= claim.HighWaterMarkOffset()
		select {
		case s.batches <- batchOf(batch, caughtUp):
			delivered = true
		case <-ended: // not delivered: the next owner reads it from the committed offset
			return h.revoke(p, delivered)
		case <-s.closing:
			return nil
		}
		if closed {
			return h.revoke(p, delivered)
		}
	}
}

// partitionCount returns the topic's partition count from freshly fetched
// metadata, or from what the client knows if the fetch fails; 0 when unknown.
func (h handler) partitionCount() int32 {
	if err := h.c.client.RefreshMetadata(h.s.topic); err != nil {
		h.s.log.Warn("kafka: metadata refresh failed", "err", err)
	}
	ps, err := h.c.client.Partitions(h.s.topic)
	if err != nil {
		h.s.log.Warn("kafka: partition count unknown", "err", err)
		return 0
	}
	return int32(len(ps))
}

// revoke tells the reader that partition p goes away, if the reader got
// anything from it, and waits until it calls Release or the source closes.
func (h handler) revoke(p int32, delivered bool) error {
	s := h.s
	if !delivered {
		return nil
	}
	released := make(chan struct{})
	var once sync.Once
	notice := sources.Batch{Topic: s.topic, Partition: p, Revoked: true,
		Release: func() { once.Do(func() { close(released) }) }}
	s.log.Info("kafka: partition revoked, waiting for release", "partition", p)
	select {
	case s.batches <- notice:
	case <-s.closing:
		return nil
	}
	select {
	case <-released:
		s.log.Info("kafka: partition released", "partition", p)
	case <-s.closing:
	}
	return nil
}

// message converts m. The value's capacity is cut to its length: values share
// the fetch response's buffer, and an append by the reader must not reach the
// next message.
func message(m *sarama.ConsumerMessage) sources.Message {
	v := m.Value
	var ts time.Time
	if m.Timestamp.UnixMilli() > 0 {
		ts = m.Timestamp
	}
	return sources.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Value: v[:len(v):len(v)], Timestamp: ts}
}
