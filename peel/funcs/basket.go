package funcs

import (
	"context"
	"encoding/json"
)

// basketGet is `basket.get TARGET NAME [KIND]`: the basket entry NAME of
// every peel TARGET selects, by peel id, as Salt's mine.get(tgt, fun,
// tgt_type). KIND is a target kind ("glob" by default, "list", "pcre",
// "fact", "compound", …). The agent asks a master (Env.Basket).
func basketGet(ctx context.Context, env *Env, args json.RawMessage) (any, error) {
	var a struct {
		Target string `json:"target"`
		Name   string `json:"name"`
		Kind   string `json:"kind"`
	}
	if err := decodeArgs(args, &a, "target", "name", "kind"); err != nil {
		return nil, err
	}
	if a.Target == "" || a.Name == "" {
		return nil, badArgs("arguments \"target\" and \"name\" are required: basket.get TARGET NAME [KIND]")
	}
	if env.Basket == nil {
		return nil, errorf(CodeFailed, "the basket is not available in this agent")
	}
	return env.Basket(ctx, a.Kind, a.Target, a.Name)
}
