package ml

// at_set_num_threads and at_get_num_threads are gotch's C API (libtch/torch_api.cpp), which
// its Go package does not wrap; the symbols are linked in with gotch.

// void at_set_num_threads(int n_threads);
// int at_get_num_threads();
import "C"

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// SetThreads sets libtorch's intra-op thread count for the process. On a 2-core node one
// thread is fastest for this model (BENCHMARKS.md): the other core serves HTTP and featurizes.
func SetThreads(n int) error {
	if n < 1 {
		return fmt.Errorf("ml: torch threads must be positive, got %d", n)
	}
	_, err := onThread(func() (struct{}, error) {
		C.at_set_num_threads(C.int(n))
		return struct{}{}, ts.TorchErr()
	})
	return err
}

// Threads returns libtorch's intra-op thread count.
func Threads() int {
	n, _ := onThread(func() (int, error) { return int(C.at_get_num_threads()), ts.TorchErr() })
	return n
}
