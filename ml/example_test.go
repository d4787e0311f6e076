package ml_test

import (
	"context"
	"fmt"

	"github.com/voluntree/voluntree/ml"
)

func ExampleOpen() {
	m, err := ml.Open("") // the model shipped inside the binary
	if err != nil {
		panic(err)
	}
	defer m.Close()
	preds, err := m.Predict(context.Background(), []string{
		"Sign me up for Saturday!",
		"where do I park?",
		"can't make it, sorry 😞",
	})
	if err != nil {
		panic(err)
	}
	for _, p := range preds {
		fmt.Println(p.Intent)
	}
	// Output:
	// interested
	// question
	// decline
}
