package httpapi

import (
	"io"
	"net"
	"sync"
	"time"
)

// Lingering close, as nginx's lingering_close and Go's net/http do it. When the server answers
// before it has read the whole request (431 for headers over 8 KiB, 413 for a body over the
// limit) and then closes, the kernel answers the unread bytes still arriving with a TCP reset,
// and a reset makes the client's kernel drop the answer it has not read yet: the client sees
// "connection reset by peer" instead of its 4xx. A closed connection therefore first shuts
// its write side (the answer is followed by a FIN), then reads and discards what the client
// still sends, for at most lingerTimeout and lingerBytes, before the socket is closed.
const (
	lingerTimeout = 2 * time.Second
	lingerBytes   = 1 << 20
)

// lingerListener hands out TCP connections whose Close lingers.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

// Close shuts the write side at once and closes the socket from a goroutine once the client
// has closed its side, sent lingerBytes more, or lingerTimeout has passed: the server's
// worker is not held.
func (c *lingerConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		if err = c.TCPConn.CloseWrite(); err != nil {
			err = c.TCPConn.Close()
			return
		}
		go func() {
			_ = c.TCPConn.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.CopyN(io.Discard, c.TCPConn, lingerBytes)
			_ = c.TCPConn.Close()
		}()
	})
	return err
}
