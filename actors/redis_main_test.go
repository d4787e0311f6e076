package actors

import (
	"testing"

	"github.com/voluntree/voluntree/internal/redistest"
)

// redisSrv is the package's private redis-server (tests needing Redis are skipped without
// one, except under CI=true). Each test takes its own client and key prefix from it.
var redisSrv *redistest.Server

func TestMain(m *testing.M) { redistest.Main(m, &redisSrv) }
