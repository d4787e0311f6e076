// Package httpapi is Voluntree's HTTP front on Fiber: the REST API under /api/v1, /healthz,
// /metrics and the embedded dashboard. Every error is JSON {"error": "..."}; domain error
// codes map to statuses in one table (errors.go).
//
//	srv := httpapi.New(httpapi.Config{Classifier: batcher, Metrics: m, Gatherer: reg})
//	ln, _ := net.Listen("tcp", ":8080")
//	go srv.Serve(ln)
//	defer srv.Shutdown(ctx)
package httpapi
