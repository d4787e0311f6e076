package smtpsink

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Protocol limits.
const (
	maxLineLen    = 2048 // a command line (RFC 5321 asks for 512; clients rarely need more)
	maxRecipients = 100  // per message, as RFC 5321 requires servers to accept at least
)

var errLineTooLong = errors.New("line too long")

// session is one client connection's SMTP conversation.
type session struct {
	sink *Sink
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer

	greeted bool // EHLO or HELO seen
	authed  bool
	inMail  bool // MAIL accepted, transaction open
	from    string
	rcpts   []string
}

func newSession(s *Sink, c net.Conn) *session {
	return &session{sink: s, c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}
}

func (ss *session) serve() {
	if ss.reply(220, "127.0.0.1 smtpsink ESMTP ready") != nil {
		return
	}
	for {
		line, err := ss.readLine()
		if errors.Is(err, errLineTooLong) {
			if ss.reply(500, "5.5.2 line too long") != nil {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		arg = strings.TrimSpace(arg)
		verb = strings.ToUpper(verb)
		if verb == "QUIT" {
			ss.reply(221, "2.0.0 bye")
			return
		}
		if err := ss.command(verb, arg); err != nil {
			return
		}
	}
}

// command runs one command; an error means the connection is broken.
func (ss *session) command(verb, arg string) error {
	switch verb {
	case "EHLO", "HELO":
		if arg == "" {
			return ss.reply(501, "5.5.4 "+verb+" needs a domain")
		}
		ss.greeted = true
		ss.reset()
		if verb == "HELO" {
			return ss.reply(250, "smtpsink greets "+arg)
		}
		return ss.reply(250, "smtpsink greets "+arg, "8BITMIME", "AUTH PLAIN",
			"SIZE "+strconv.Itoa(ss.sink.cfg.MaxSize))
	case "AUTH":
		return ss.auth(arg)
	case "MAIL":
		return ss.mail(arg)
	case "RCPT":
		return ss.rcpt(arg)
	case "DATA":
		return ss.data(arg)
	case "RSET":
		ss.reset()
		return ss.reply(250, "2.0.0 OK")
	case "NOOP":
		return ss.reply(250, "2.0.0 OK")
	case "VRFY":
		return ss.reply(252, "2.1.5 cannot VRFY user, but will accept the message")
	default:
		return ss.reply(500, "5.5.2 command not recognized")
	}
}

func (ss *session) reset() {
	ss.inMail, ss.from, ss.rcpts = false, "", nil
}

func (ss *session) auth(arg string) error {
	switch {
	case !ss.greeted:
		return ss.reply(503, "5.5.1 EHLO first")
	case ss.authed:
		return ss.reply(503, "5.5.1 already authenticated")
	case ss.inMail:
		return ss.reply(503, "5.5.1 AUTH not allowed during a mail transaction")
	}
	mech, resp, _ := strings.Cut(arg, " ")
	if !strings.EqualFold(mech, "PLAIN") {
		return ss.reply(504, "5.5.4 only AUTH PLAIN is supported")
	}
	resp = strings.TrimSpace(resp)
	if resp == "" {
		if err := ss.reply(334, ""); err != nil {
			return err
		}
		line, err := ss.readLine()
		if errors.Is(err, errLineTooLong) {
			return ss.reply(500, "5.5.2 line too long")
		}
		if err != nil {
			return err
		}
		resp = strings.TrimSpace(line)
	}
	if resp == "*" {
		return ss.reply(501, "5.0.0 authentication cancelled")
	}
	if resp == "=" { // an empty initial response
		resp = ""
	}
	dec, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return ss.reply(501, "5.5.2 invalid base64")
	}
	parts := bytes.Split(dec, []byte{0})
	if len(parts) != 3 {
		return ss.reply(501, "5.5.2 malformed PLAIN response")
	}
	user, pass := string(parts[1]), string(parts[2])
	if cfg := ss.sink.cfg; cfg.Username != "" && (user != cfg.Username || pass != cfg.Password) {
		return ss.reply(535, "5.7.8 authentication credentials invalid")
	}
	ss.authed = true
	return ss.reply(235, "2.7.0 authentication successful")
}

func (ss *session) mail(arg string) error {
	switch {
	case !ss.greeted:
		return ss.reply(503, "5.5.1 EHLO or HELO first")
	case ss.inMail:
		return ss.reply(503, "5.5.1 nested MAIL command")
	case ss.sink.cfg.Username != "" && !ss.authed:
		return ss.reply(530, "5.7.0 authentication required")
	}
	addr, params, ok := parsePath(arg, "FROM:")
	if !ok {
		return ss.reply(501, "5.5.4 syntax: MAIL FROM:<address>")
	}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(k, "SIZE") {
			if n, err := strconv.Atoi(v); err == nil && n > ss.sink.cfg.MaxSize {
				return ss.reply(552, "5.3.4 message size exceeds fixed limit")
			}
		}
	}
	ss.inMail, ss.from, ss.rcpts = true, addr, nil
	return ss.reply(250, "2.1.0 OK")
}

func (ss *session) rcpt(arg string) error {
	if !ss.inMail {
		return ss.reply(503, "5.5.1 need MAIL before RCPT")
	}
	addr, _, ok := parsePath(arg, "TO:")
	if !ok || addr == "" {
		return ss.reply(501, "5.5.4 syntax: RCPT TO:<address>")
	}
	if len(ss.rcpts) >= maxRecipients {
		return ss.reply(452, "4.5.3 too many recipients")
	}
	ss.rcpts = append(ss.rcpts, addr)
	return ss.reply(250, "2.1.5 OK")
}

func (ss *session) data(arg string) error {
	if arg != "" {
		return ss.reply(501, "5.5.4 DATA takes no arguments")
	}
	if !ss.inMail || len(ss.rcpts) == 0 {
		return ss.reply(503, "5.5.1 need RCPT before DATA")
	}
	if err := ss.reply(354, "start mail input; end with <CRLF>.<CRLF>"); err != nil {
		return err
	}
	data, tooBig, err := ss.readData()
	if err != nil {
		return err
	}
	from, rcpts := ss.from, ss.rcpts
	ss.reset()
	if tooBig {
		return ss.reply(552, "5.3.4 message size exceeds fixed limit")
	}
	if code, text, fail := ss.sink.takeFailure(); fail {
		return ss.reply(code, text)
	}
	ss.sink.store(from, rcpts, data)
	return ss.reply(250, "2.0.0 OK: queued")
}

// readData reads message data up to the line ".", undoing dot-stuffing and keeping CRLF
// line ends. Past MaxSize it keeps reading to the end but stores nothing (tooBig).
func (ss *session) readData() (data []byte, tooBig bool, err error) {
	var buf bytes.Buffer
	lineStart := true
	for {
		ss.c.SetReadDeadline(time.Now().Add(idleTimeout))
		chunk, err := ss.r.ReadSlice('\n')
		whole := err == nil // chunk ends a line
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, false, err
		}
		if lineStart && whole && (string(chunk) == ".\r\n" || string(chunk) == ".\n") {
			return buf.Bytes(), tooBig, nil
		}
		if lineStart && len(chunk) > 0 && chunk[0] == '.' {
			chunk = chunk[1:]
		}
		if !tooBig {
			if buf.Len()+len(chunk) > ss.sink.cfg.MaxSize {
				tooBig = true
				buf = bytes.Buffer{}
			} else {
				buf.Write(chunk)
			}
		}
		lineStart = whole
	}
}

// readLine reads one command line without its line end.
func (ss *session) readLine() (string, error) {
	var line []byte
	tooLong := false
	for {
		ss.c.SetReadDeadline(time.Now().Add(idleTimeout))
		chunk, err := ss.r.ReadSlice('\n')
		if len(line)+len(chunk) > maxLineLen {
			tooLong = true
		} else {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if tooLong {
		return "", errLineTooLong
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// reply writes a (multi-line) reply: every line but the last is "code-text".
func (ss *session) reply(code int, lines ...string) error {
	for i, l := range lines {
		sep := " "
		if i < len(lines)-1 {
			sep = "-"
		}
		fmt.Fprintf(ss.w, "%d%s%s\r\n", code, sep, l)
	}
	return ss.w.Flush()
}

// parsePath parses "FROM:<addr> PARAM=V ..." (keyword "FROM:" or "TO:", case-insensitive).
func parsePath(arg, keyword string) (addr string, params []string, ok bool) {
	if len(arg) < len(keyword) || !strings.EqualFold(arg[:len(keyword)], keyword) {
		return "", nil, false
	}
	rest := strings.TrimSpace(arg[len(keyword):])
	if !strings.HasPrefix(rest, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, false
	}
	return rest[1:end], strings.Fields(rest[end+1:]), true
}
