package ml

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// smallModelFile is a valid native model file with tiny dims, as writeModel writes it.
func smallModelFile(tb testing.TB, d Dims) []byte {
	tb.Helper()
	h := fileHeader{Labels: []string{"interested", "question", "donate", "decline", "thanks", "other"},
		Featurizer: DefaultFeaturizerConfig(), Dims: d}
	vals := map[string][]float32{}
	for _, name := range d.tensorNames() {
		shape := d.shapes()[name]
		h.Tensors = append(h.Tensors, tensorEntry{Name: name, Shape: shape})
		vals[name] = make([]float32, numel(shape))
	}
	var b bytes.Buffer
	if err := writeModel(&b, h, vals); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// FuzzModelFile: whatever a model file holds (a corrupt download, a file of another kind, a
// length that lies), reading it is an error or a model whose tensors are exactly what its
// header declares — never a panic, and never an allocation the file's own size does not
// back (the header is read only up to 1 MiB, the tensors only once their size matches).
func FuzzModelFile(f *testing.F) {
	valid := smallModelFile(f, Dims{Buckets: 4, Embed: 2, Hidden: 3, Classes: 6})
	f.Add(valid)
	f.Add(smallModelFile(f, Dims{Buckets: 4, Embed: 6, Hidden: 0, Classes: 6, Pooling: PoolTFIDF}))
	f.Add([]byte(modelMagic))
	f.Add(append([]byte(modelMagic), 0xff, 0xff, 0xff, 0xff))
	f.Add([]byte("PK\x03\x04 torchscript"))
	lying := bytes.Clone(valid)
	binary.LittleEndian.PutUint32(lying[len(modelMagic):], 1<<20)
	f.Add(lying)
	f.Add(valid[:len(valid)-3])
	f.Add(append(bytes.Clone(valid), 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, vals, err := readModel(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var total int64
		for _, te := range h.Tensors {
			if int64(len(vals[te.Name])) != numel(te.Shape) {
				t.Fatalf("tensor %s: %d values for shape %v", te.Name, len(vals[te.Name]), te.Shape)
			}
			total += numel(te.Shape) * 4
		}
		if total > int64(len(data)) {
			t.Fatalf("%d bytes of weights from a %d-byte file", total, len(data))
		}
		_ = checkLabels(h.Labels)
		_ = h.Featurizer.Validate()
	})
}
