# The README's commands. Every target works on a fresh machine with Go 1.26,
# Java 17 and Maven: the scripts fetch and start what they need.

.PHONY: run replay test bench services-up services-down fmt

# The full pipeline with embedded defaults.
run:
	go run ./examples/fullpipeline

# A finite replay of a generated data set into ./out.
replay:
	go run ./examples/producer generate -n 100000 -o data/events.jsonl
	go run ./examples/fullpipeline -source file:data/events.jsonl -jsonl out -mongo off -parquet off -http off

# Unit tests, integration tests against real Kafka and a MongoDB-wire server,
# and a short fuzzing run.
test:
	bash scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchtime 2s ./...

services-up:
	bash scripts/services.sh up

services-down:
	bash scripts/services.sh down

fmt:
	gofmt -w $$(git ls-files '*.go')
