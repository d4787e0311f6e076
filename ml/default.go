package ml

import (
	_ "embed"
)

// DefaultModelPath is where `voluntree train` writes the shipped model; the binary embeds it.
const DefaultModelPath = "ml/models/intent.vtm"

//go:embed models/intent.vtm
var defaultModel []byte

// LoadDefault loads the model shipped inside the binary.
func LoadDefault() (*Native, error) {
	return LoadNative("embedded:"+DefaultModelPath, defaultModel)
}

// Open loads the model file at path, or the embedded default when path is empty.
func Open(path string) (Model, error) {
	if path == "" {
		return LoadDefault()
	}
	return Load(path)
}
