// Package ml is Voluntree's intent model on libtorch (through gotch): a featurizer that
// hashes words, bigrams, character n-grams and shape features of a text; a network defined
// in Go (embedding bag mean, one hidden layer, six logits); seeded training with typo and
// casing augmentation; evaluation; and loading of both native model files and TorchScript
// archives exported from PyTorch behind one Model interface.
//
//	m, err := ml.Open("")   // the model shipped in the binary; or ml.Open("model.pt")
//	defer m.Close()
//	preds, err := m.Predict(ctx, []string{"Sign me up for Saturday!"})
//	fmt.Println(preds[0].Intent, preds[0].Confidence) // interested 0.99
package ml
