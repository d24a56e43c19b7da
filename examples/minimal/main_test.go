package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/clickstreamkit/clickstream/sinks"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	mongosink "github.com/clickstreamkit/clickstream/sinks/mongo"
)

// The example runs as written against the real broker and MongoDB-wire
// server (KAFKA_BROKERS, MONGODB_URI), twice over the same topic: the second
// run resumes from the checkpoints and changes nothing.
func TestMinimal(t *testing.T) {
	brokers, uri := os.Getenv("KAFKA_BROKERS"), os.Getenv("MONGODB_URI")
	if brokers == "" || uri == "" {
		t.Skip("KAFKA_BROKERS and MONGODB_URI not set (bash scripts/services.sh up)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	b := make([]byte, 4)
	rand.Read(b)
	topic, db := "minimal_"+hex.EncodeToString(b), "minimal_"+hex.EncodeToString(b)
	bs := strings.Split(brokers, ",")
	admin, err := sarama.NewClusterAdmin(bs, sarama.NewConfig())
	require.NoError(t, err)
	defer admin.Close()
	require.NoError(t, admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false))
	defer admin.DeleteTopic(topic)
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(bs, cfg)
	require.NoError(t, err)
	base := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for i, typ := range []string{"page_view", "add_to_cart", "purchase", "page_view"} {
		user := fmt.Sprint("u", i/3)
		v := fmt.Sprintf(`{"event_id":"e%d","event_type":%q,"event_ts":%q,"user_id":%q,"price":10,"currency":"EUR"}`,
			i, typ, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339), user)
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(user), Value: sarama.StringEncoder(v)})
		require.NoError(t, err)
	}
	require.NoError(t, p.Close())

	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err)
	defer client.Disconnect(context.Background())
	defer client.Database(db).Drop(context.Background())
	sink, err := mongosink.New(client, db)
	require.NoError(t, err)
	var first []sinks.GlobalKPIRecord
	for i := range 2 {
		require.NoError(t, run(ctx, bs, topic, uri, db, true), "run %d", i)
		minutes, err := sink.LatestMinutes(ctx, 5)
		require.NoError(t, err)
		got := sinks.GlobalKPIRecords(minutes)
		require.Len(t, got, 1)
		require.True(t, got[0].Final)
		require.Equal(t, int64(1), got[0].Purchases)
		require.Equal(t, int64(2), got[0].Sessions)
		if i == 0 {
			first = got
		}
		require.Equal(t, first, got, "a second run over the same topic changes nothing")
	}
}
