// Package mail queues emails in Redis and sends them from a background loop, so a request
// that triggers an email (an email verification code) only has to enqueue it durably.
//
// The queue is a Redis stream (redisstore Keys.MailQueue) read by the consumer group
// Keys.MailGroup. A Worker reads new emails, sends each through a Sender, and acknowledges
// it once sent. A temporary failure leaves the email pending; the worker retries it with
// exponential backoff, counting attempts by the stream's delivery count, so restarts keep
// the count. A permanent failure (an SMTP 5xx reply), an entry that cannot be decoded, or
// MaxAttempts failed attempts move the email to the dead stream (Keys.MailDead) with the
// error. Emails left pending by a sender that died are claimed by another after ClaimIdle.
//
// Delivery is at least once: a crash (or a lost connection to Redis) between a successful
// Send and the acknowledgement sends the email again. A resend carries the same Message-ID
// (<ID@voluntree>), so receivers that dedupe by Message-ID show it once.
//
// Two Senders: SMTPSender (smtp:// or smtps:// URL) and OutboxSender, the embedded default
// when no SMTP server is configured, which keeps the latest emails in a Redis list for the
// first page to show.
//
//	q := mail.NewQueue(rdb, keys)
//	id, err := q.Enqueue(ctx, mail.Email{To: "ada@example.org", Subject: "Your code", Text: "123456"})
//
//	sender, err := mail.NewSMTPSender("smtp://user:pass@smtp.example.org:587?from=noreply@example.org")
//	w := mail.NewWorker(rdb, keys, sender, mail.WorkerConfig{}, logger)
//	go w.Run(ctx) // until ctx ends
package mail
