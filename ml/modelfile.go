package ml

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// The native model file: the magic line, a little-endian uint32 header length, the JSON header,
// then each tensor of header.Tensors as little-endian float32 values.
const modelMagic = "VOLUNTREE-INTENT-MODEL 1\n"

// maxHeaderBytes guards against reading a corrupt length.
const maxHeaderBytes = 1 << 20

type fileHeader struct {
	Labels     []string         `json:"labels"`
	Featurizer FeaturizerConfig `json:"featurizer"`
	Dims       Dims             `json:"dims"`
	Tensors    []tensorEntry    `json:"tensors"`
	Training   *TrainingInfo    `json:"training,omitempty"`
}

type tensorEntry struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
}

// TrainingInfo records how a model file was made and how it scored on validation.
type TrainingInfo struct {
	Arch string `json:"arch,omitempty"` // ArchLinear or ArchMLP ("" in the first models: mlp)
	// Calibration is the factor the scores were scaled by to calibrate them (0 or 1: none).
	Calibration float64   `json:"calibration,omitempty"`
	Seed        uint64    `json:"seed"`
	Epochs      int       `json:"epochs"`
	TrainedAt   time.Time `json:"trained_at"`
	TrainItems  int       `json:"train_items"`
	Validation  *Report   `json:"validation,omitempty"`
}

func writeModel(w io.Writer, h fileHeader, vals map[string][]float32) error {
	hdr, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("ml: encode model header: %w", err)
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(modelMagic)
	binary.Write(bw, binary.LittleEndian, uint32(len(hdr)))
	bw.Write(hdr)
	buf := make([]byte, 4)
	for _, t := range h.Tensors {
		for _, v := range vals[t.Name] {
			binary.LittleEndian.PutUint32(buf, math.Float32bits(v))
			bw.Write(buf)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("ml: write model: %w", err)
	}
	return nil
}

// readModel decodes a model file of size bytes.
func readModel(r io.Reader, size int64) (fileHeader, map[string][]float32, error) {
	var h fileHeader
	br := bufio.NewReader(r)
	magic := make([]byte, len(modelMagic))
	if _, err := io.ReadFull(br, magic); err != nil || !bytes.Equal(magic, []byte(modelMagic)) {
		return h, nil, fmt.Errorf("ml: not a Voluntree model file")
	}
	var n uint32
	if err := binary.Read(br, binary.LittleEndian, &n); err != nil || n > maxHeaderBytes {
		return h, nil, fmt.Errorf("ml: corrupt model header length")
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return h, nil, fmt.Errorf("ml: read model header: %w", err)
	}
	if err := json.Unmarshal(hdr, &h); err != nil {
		return h, nil, fmt.Errorf("ml: decode model header: %w", err)
	}
	if err := checkTensors(h, size-int64(len(modelMagic)+4+len(hdr))); err != nil {
		return h, nil, err
	}
	vals := make(map[string][]float32, len(h.Tensors))
	for _, t := range h.Tensors {
		raw := make([]byte, numel(t.Shape)*4)
		if _, err := io.ReadFull(br, raw); err != nil {
			return h, nil, fmt.Errorf("ml: read tensor %s: %w", t.Name, err)
		}
		v := make([]float32, len(raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[i*4:]))
		}
		vals[t.Name] = v
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return h, nil, fmt.Errorf("ml: trailing bytes after the last tensor")
	}
	return h, vals, nil
}

// checkTensors verifies, before anything is allocated, that the header lists exactly the
// network's tensors with the shapes its dims imply, and that their data fits in the file.
func checkTensors(h fileHeader, dataBytes int64) error {
	d := h.Dims
	if err := d.check(); err != nil {
		return err
	}
	tensorNames := d.tensorNames()
	if len(h.Tensors) != len(tensorNames) {
		return fmt.Errorf("ml: model has %d tensors, want %d", len(h.Tensors), len(tensorNames))
	}
	shapes := d.shapes()
	var need int64
	for i, t := range h.Tensors {
		if t.Name != tensorNames[i] || !slices.Equal(t.Shape, shapes[t.Name]) {
			return fmt.Errorf("ml: tensor %d is %s%v, want %s%v", i, t.Name, t.Shape, tensorNames[i], shapes[tensorNames[i]])
		}
		need += numel(t.Shape) * 4
	}
	if need != dataBytes {
		return fmt.Errorf("ml: model file has %d bytes of weights, its header needs %d", dataBytes, need)
	}
	return nil
}
