// Package mongotest connects tests to the MongoDB named by MONGODB_URI (a
// real MongoDB, or the MongoDB-wire server of scripts/services.sh) and gives
// each test a database of its own.
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Client connects to MONGODB_URI, or skips the test without it.
func Client(t testing.TB) *mongo.Client {
	t.Helper()
	uri := os.Getenv("MONGODB_URI")
	if uri == "" {
		t.Skip("MONGODB_URI not set: skipping MongoDB integration test (run `bash scripts/services.sh up` and set MONGODB_URI=mongodb://127.0.0.1:27018/)")
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// Database returns a fresh database name starting with prefix, dropped when
// the test ends.
func Database(t testing.TB, c *mongo.Client, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Database(name).Drop(ctx); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name
}
