package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Validator checks events against one of the JSON Schema files that
// `python -m shared.schemas.registry` generates from the pydantic models.
type Validator struct {
	schema *jsonschema.Schema
	name   string
}

// LoadValidator compiles schemas/json/<model>.json. The files are the contract: a field the
// Python side rejects (unknown, missing, out of range) fails here first.
func LoadValidator(dir, model string) (*Validator, error) {
	path, err := filepath.Abs(filepath.Join(dir, model+".json"))
	if err != nil {
		return nil, err
	}
	schema, err := jsonschema.NewCompiler().Compile(path)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", path, err)
	}
	return &Validator{schema: schema, name: model}, nil
}

// Encode marshals an event to JSON and validates the bytes that will be sent.
func (v *Validator) Encode(event any) ([]byte, error) {
	raw, err := json.Marshal(event)
	if err != nil {
		return nil, err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if err := v.schema.Validate(inst); err != nil {
		return nil, fmt.Errorf("%s: %w", v.name, err)
	}
	return raw, nil
}
