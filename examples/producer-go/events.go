package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// PricingRequest mirrors schemas/json/PricingRequest.json (pricing.requests, key sku).
type PricingRequest struct {
	SchemaVersion    string    `json:"schema_version"`
	SKU              string    `json:"sku"`
	Category         string    `json:"category"`
	CurrentPrice     float64   `json:"current_price"`
	UnitCost         float64   `json:"unit_cost"`
	Stock            int       `json:"stock"`
	CompetitorPrices []float64 `json:"competitor_prices"`
	RecentUnits      float64   `json:"recent_units"`
	Feature          bool      `json:"feature"`
	Display          bool      `json:"display"`
	TPR              bool      `json:"tpr"`
	WeekOfYear       int       `json:"week_of_year"`
	DayOfWeek        int       `json:"day_of_week"`
	Floor            float64   `json:"floor"`
	Ceiling          float64   `json:"ceiling"`
	TsMs             int64     `json:"ts_ms"`
}

// Transaction mirrors schemas/json/Transaction.json (payments.transactions, key user_id).
type Transaction struct {
	SchemaVersion    string  `json:"schema_version"`
	TxnID            string  `json:"txn_id"`
	UserID           string  `json:"user_id"`
	CardID           string  `json:"card_id"`
	Amount           float64 `json:"amount"`
	Currency         string  `json:"currency"`
	MerchantID       string  `json:"merchant_id"`
	MerchantCategory string  `json:"merchant_category"`
	DeviceID         string  `json:"device_id"`
	IPCountry        string  `json:"ip_country"`
	CardBIN          string  `json:"card_bin"`
	Channel          string  `json:"channel"`
	TsMs             int64   `json:"ts_ms"`
}

// Event is one record to produce: its Kafka key, the value to encode, and its id for logs.
type Event struct {
	Key   string
	Value any
	ID    string
}

var categories = []string{"coffee", "cereal", "snacks", "books", "toys"}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// NewPricingRequest is a plausible repricing request; broken=true makes it invalid on
// purpose (a negative stock) to show that the schema check stops it before Kafka.
func NewPricingRequest(rng *rand.Rand, i int, now time.Time, broken bool) Event {
	price := round2(2 + rng.Float64()*48)
	cost := round2(price * (0.3 + rng.Float64()*0.3))
	_, week := now.ISOWeek()
	req := PricingRequest{
		SchemaVersion: "1.0", SKU: fmt.Sprintf("go-sku%05d", i%500), Category: categories[i%len(categories)],
		CurrentPrice: price, UnitCost: cost, Stock: 20 + rng.IntN(200),
		CompetitorPrices: []float64{round2(price * 0.97), round2(price * 1.03)},
		RecentUnits:      float64(5 + rng.IntN(60)), WeekOfYear: week, DayOfWeek: (int(now.Weekday()) + 6) % 7,
		Floor: round2(math.Max(cost*1.05, price*0.6)), Ceiling: round2(price * 1.6), TsMs: now.UnixMilli(),
	}
	if broken {
		req.Stock = -1
	}
	return Event{Key: req.SKU, Value: req, ID: fmt.Sprintf("%s@%d", req.SKU, req.TsMs)}
}

// NewTransaction is a plausible card payment; broken=true gives it an unknown currency.
func NewTransaction(rng *rand.Rand, i int, now time.Time, broken bool) Event {
	user := fmt.Sprintf("go-u%04d", rng.IntN(1000))
	txn := Transaction{
		SchemaVersion: "1.0", TxnID: fmt.Sprintf("go-t%08d", i), UserID: user, CardID: user + "-c1",
		Amount: round2(1 + rng.ExpFloat64()*40), Currency: "EUR", MerchantID: fmt.Sprintf("go-m%03d", rng.IntN(100)),
		MerchantCategory: "grocery", DeviceID: user + "-d1", IPCountry: "DE", CardBIN: "457173", Channel: "web",
		TsMs: now.UnixMilli(),
	}
	if broken {
		txn.Currency = "XXX"
	}
	return Event{Key: txn.UserID, Value: txn, ID: txn.TxnID}
}
