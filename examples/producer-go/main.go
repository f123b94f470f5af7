// Command producer-go is an example shopstream producer written in Go.
//
// It builds pricing requests or card payments, validates each one against the JSON Schema
// files generated from the Python models (schemas/json/), and produces the valid ones to
// Kafka with franz-go (pure Go, no cgo). Invalid events are reported and never sent.
//
// Exit codes follow the shopstream CLI: 0 ok, 1 runtime failure (Kafka), 2 bad arguments or
// schemas that do not load.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

type kind struct {
	model, topic string
	make         func(*rand.Rand, int, time.Time, bool) Event
}

var kinds = map[string]kind{
	"pricing":  {"PricingRequest", "pricing.requests", NewPricingRequest},
	"payments": {"Transaction", "payments.transactions", NewTransaction},
}

type options struct {
	brokers, schemas, kind, topic string
	count, badEvery               int
	seed                          uint64
	dryRun                        bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("producer-go", flag.ContinueOnError)
	fs.StringVar(&o.brokers, "brokers", envOr("SHOPSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092"), "bootstrap servers")
	fs.StringVar(&o.schemas, "schemas", "../../schemas/json", "folder of the generated JSON Schema files")
	fs.StringVar(&o.kind, "kind", "pricing", "events to produce: pricing or payments")
	fs.StringVar(&o.topic, "topic", "", "topic (default: the kind's input topic)")
	fs.IntVar(&o.count, "count", 100, "events to build")
	fs.IntVar(&o.badEvery, "bad-every", 0, "make every Nth event invalid, to show the schema check (0 = none)")
	fs.Uint64Var(&o.seed, "seed", 1, "random seed")
	fs.BoolVar(&o.dryRun, "dry-run", false, "validate and print the events as JSON lines; no Kafka")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if _, ok := kinds[o.kind]; !ok {
		return o, fmt.Errorf("unknown -kind %q (pricing or payments)", o.kind)
	}
	if o.count < 0 || o.badEvery < 0 {
		return o, fmt.Errorf("-count and -bad-every must be >= 0")
	}
	return o, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// build encodes every event, keeping the valid ones as records.
func build(o options, k kind, v *Validator) ([]*kgo.Record, int) {
	rng := rand.New(rand.NewPCG(o.seed, 7))
	start := time.Now()
	var records []*kgo.Record
	rejected := 0
	for i := range o.count {
		broken := o.badEvery > 0 && (i+1)%o.badEvery == 0
		ev := k.make(rng, i, start.Add(time.Duration(i)*time.Millisecond), broken)
		value, err := v.Encode(ev.Value)
		if err != nil {
			rejected++
			fmt.Fprintf(os.Stderr, "rejected %s: %s\n", ev.ID, strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		records = append(records, &kgo.Record{Topic: o.topic, Key: []byte(ev.Key), Value: value})
	}
	return records, rejected
}

func run(args []string) int {
	o, err := parseFlags(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer-go: error:", err)
		return 2
	}
	k := kinds[o.kind]
	if o.topic == "" {
		o.topic = k.topic
	}
	v, err := LoadValidator(o.schemas, k.model)
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer-go: error:", err)
		return 2
	}
	records, rejected := build(o, k, v)
	if o.dryRun {
		for _, r := range records {
			fmt.Println(string(r.Value))
		}
		fmt.Fprintf(os.Stderr, "validated %d %s events (rejected %d invalid)\n", len(records), o.kind, rejected)
		return 0
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(o.brokers, ",")...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "producer-go:", err)
		return 1
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := client.ProduceSync(ctx, records...).FirstErr(); err != nil {
		fmt.Fprintln(os.Stderr, "producer-go: produce:", err)
		return 1
	}
	fmt.Printf("produced %d %s events to %s (rejected %d invalid)\n", len(records), o.kind, o.topic, rejected)
	return 0
}

func main() { os.Exit(run(os.Args[1:])) }
