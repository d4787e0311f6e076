package ml

// at_set_num_threads and at_get_num_threads are gotch's C API (libtch/torch_api.cpp), which
// its Go package does not wrap; the symbols are linked in with gotch.

// void at_set_num_threads(int n_threads);
// int at_get_num_threads();
import "C"

import (
	"fmt"
	"sync/atomic"

	"github.com/sugarme/gotch/ts"
)

// torchThreads is the intra-op thread count SetThreads asked for (0: libtorch's default).
// libtorch keeps it per OS thread (OpenMP's thread-count setting belongs to the thread that
// sets it), and Go runs each forward pass on whichever OS thread its goroutine is on: so the
// count is applied on the thread of every forward pass (applyThreads), not once. It is
// process-wide, as libtorch's own state is.
var torchThreads atomic.Int32

// SetThreads sets libtorch's intra-op thread count for the process's forward passes. On a
// 2-core node one thread is fastest for this model (BENCHMARKS.md): the other core serves
// HTTP and featurizes.
func SetThreads(n int) error {
	if n < 1 {
		return fmt.Errorf("ml: torch threads must be positive, got %d", n)
	}
	torchThreads.Store(int32(n))
	_, err := onThread(func() (struct{}, error) {
		applyThreads()
		return struct{}{}, ts.TorchErr()
	})
	return err
}

// Threads returns libtorch's intra-op thread count on a thread as a forward pass sees it.
func Threads() int {
	n, _ := onThread(func() (int, error) {
		applyThreads()
		return int(C.at_get_num_threads()), ts.TorchErr()
	})
	return n
}

// applyThreads sets the current OS thread's count to SetThreads's, when it differs (call it
// with the OS thread locked).
func applyThreads() {
	if n := torchThreads.Load(); n > 0 && int32(C.at_get_num_threads()) != n {
		C.at_set_num_threads(C.int(n))
	}
}
