// Package actors holds Voluntree's Proto.Actor actors and their typed fronts, so callers
// never handle a PID.
//
// The batching inference actor (batcher_actor.go, policy in batch_queue.go) gathers classify
// requests from many senders into model batches: a batch runs when it reaches MaxBatch texts
// or when the oldest queued text has waited MaxDelay. Batches run one at a time in a child
// actor (inference_actor.go), so the blocking libtorch call never stalls the batcher's
// mailbox; while one batch runs the next one fills. The queue is bounded: past MaxQueue texts
// a request fails at once with an EOVERLOADED error.
//
//	system := actors.NewSystem(logger, nil)
//	b, err := actors.NewBatcher(system, model, actors.BatcherConfig{MaxBatch: 64, MaxDelay: 5 * time.Millisecond}, m, logger)
//	preds, err := b.Classify(ctx, []string{"count me in!", "what time?"})
package actors
