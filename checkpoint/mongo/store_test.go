package mongo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/clickstreamkit/clickstream/checkpoint"
	"github.com/clickstreamkit/clickstream/checkpoint/checkpointtest"
	cpmongo "github.com/clickstreamkit/clickstream/checkpoint/mongo"
	"github.com/clickstreamkit/clickstream/internal/mongotest"
)

func client(t *testing.T) *mongo.Client { return mongotest.Client(t) }

func database(t *testing.T, c *mongo.Client) string { return mongotest.Database(t, c, "cs_test_ckpt_") }

func TestStore(t *testing.T) {
	c := client(t)
	checkpointtest.Run(t, func(t *testing.T) checkpoint.Store {
		s, err := cpmongo.New(c, database(t, c))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestStoreTooLarge(t *testing.T) {
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	s, err := cpmongo.New(c, "unused")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", State: make([]byte, cpmongo.MaxState+1)})
	if !errors.Is(err, cpmongo.ErrStateTooLarge) {
		t.Fatalf("Save of a state over MaxState = %v, want ErrStateTooLarge", err)
	}
}

func TestStoreUnreachable(t *testing.T) {
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").
		SetServerSelectionTimeout(300 * time.Millisecond).SetConnectTimeout(300 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	s, err := cpmongo.New(c, "unused")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(t.Context(), checkpoint.Checkpoint{Topic: "clicks", Next: 1}); err == nil {
		t.Fatal("Save to an unreachable server returned nil")
	}
	if _, err := s.Load(t.Context(), "clicks", 0); err == nil || errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Load from an unreachable server = %v, want an error other than ErrNotFound", err)
	}
}

func TestNewValidates(t *testing.T) {
	c, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	for name, f := range map[string]func() (*cpmongo.Store, error){
		"nil client":       func() (*cpmongo.Store, error) { return cpmongo.New(nil, "db") },
		"no database":      func() (*cpmongo.Store, error) { return cpmongo.New(c, "") },
		"no collection":    func() (*cpmongo.Store, error) { return cpmongo.New(c, "db", cpmongo.WithCollection("")) },
		"negative timeout": func() (*cpmongo.Store, error) { return cpmongo.New(c, "db", cpmongo.WithTimeout(-time.Second)) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("New with %s: no error", name)
		}
	}
}
