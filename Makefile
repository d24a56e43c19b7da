# The README's commands. Every target works on a fresh machine with Go 1.26,
# Java 17 and Maven: the scripts fetch and start what they need.

.PHONY: run build replay test bench services-up services-down fmt

# Flags for the demo: make run ARGS='-config examples/fullpipeline/demo.yaml -rate 100'
ARGS ?=
# Where `make build` puts the demo's binary.
BIN ?= bin/fullpipeline

# The full pipeline with embedded defaults, until Ctrl-C (or SIGTERM to the
# program), which it answers with a clean shutdown and exit status 0. On a
# terminal the program runs as a job of its own (bash's job control), so
# Ctrl-C reaches it alone: a make that Ctrl-C reached would die of the signal
# (status 130) whatever the program did, and `go run` would fail too. Ctrl-Z
# (status 148) stops make too, so that the shell's fg resumes the program.
run: build
	@bash -c 'if [ -t 0 ]; then set -m; fi; "$$0" "$$@"; s=$$?; \
	  while [ $$s = 148 ] && [ -t 0 ]; do kill -TSTP 0; fg >/dev/null; s=$$?; done; \
	  exit $$s' $(BIN) $(ARGS)

# bin/ ignores itself, like the tests' tmp/.
build:
	@mkdir -p bin $(dir $(BIN)) && echo '*' > bin/.gitignore
	go build -o $(BIN) ./examples/fullpipeline

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
