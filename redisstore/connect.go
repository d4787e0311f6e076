package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/voluntree/voluntree"
)

// Connecting a page: an organization's pending email verification, and the Facebook Login
// states waiting for their callback.

// EmailChallengeRetention is how long a pending verification is kept after its last change:
// past the code's validity, for the hourly send limit.
const EmailChallengeRetention = 2 * time.Hour

// UpdateEmailVerification runs fn on an organization and its pending verification in one
// optimistic transaction (retried when either changes under it, so two concurrent guesses
// count as two attempts). When fn returns commit, the organization and the challenge as fn
// left them are stored (a nil Challenge is deleted); fn's error is returned either way, so a
// wrong code can count an attempt and still fail the call. ENOTFOUND for no organization.
func (s *Store) UpdateEmailVerification(ctx context.Context, orgID string, fn func(v *EmailVerification) (commit bool, err error)) (EmailVerification, error) {
	orgKey, codeKey := s.keys.Org(orgID), s.keys.EmailCode(orgID)
	var out EmailVerification
	var fnErr error
	err := s.watch(ctx, func(tx *redis.Tx) error {
		org, err := getJSON[voluntree.Organization](ctx, tx, orgKey, "organization", orgID)
		if err != nil {
			return err
		}
		v := EmailVerification{Org: org}
		ch, err := getJSON[voluntree.EmailChallenge](ctx, tx, codeKey, "email verification", orgID)
		switch {
		case err == nil:
			v.Challenge = &ch
		case voluntree.ErrorCode(err) != voluntree.ENOTFOUND:
			return err
		}
		commit, ferr := fn(&v)
		if !commit {
			out, fnErr = v, ferr
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, orgKey, mustJSON(v.Org), 0)
			if v.Challenge == nil {
				p.Del(ctx, codeKey)
			} else {
				p.Set(ctx, codeKey, mustJSON(v.Challenge), EmailChallengeRetention)
			}
			return nil
		})
		out, fnErr = v, ferr
		return err
	}, orgKey, codeKey)
	if err != nil {
		return EmailVerification{}, fmt.Errorf("redisstore: email verification of %s: %w", orgID, err)
	}
	return out, fnErr
}

// EmailVerification returns an organization with its pending verification.
func (s *Store) EmailVerification(ctx context.Context, orgID string) (EmailVerification, error) {
	return s.UpdateEmailVerification(ctx, orgID, func(*EmailVerification) (bool, error) { return false, nil })
}

// SaveLoginState stores a new login state for ttl; ECONFLICT if the state exists.
func (s *Store) SaveLoginState(ctx context.Context, state string, ls LoginState, ttl time.Duration) error {
	ok, err := s.rdb.SetNX(ctx, s.keys.LoginState(state), mustJSON(ls), ttl).Result()
	if err != nil {
		return fmt.Errorf("redisstore: save login state: %w", err)
	}
	if !ok {
		return voluntree.Errorf(voluntree.ECONFLICT, "login state exists")
	}
	return nil
}

// LoginState returns a login state without taking it; ENOTFOUND when unknown or expired.
func (s *Store) LoginState(ctx context.Context, state string) (LoginState, error) {
	return getJSON[LoginState](ctx, s.rdb, s.keys.LoginState(state), "login state", "")
}

// TakeLoginState returns and deletes a login state (a state is good for one callback);
// ENOTFOUND when it is unknown, used or expired.
func (s *Store) TakeLoginState(ctx context.Context, state string) (LoginState, error) {
	var ls LoginState
	b, err := s.rdb.GetDel(ctx, s.keys.LoginState(state)).Bytes()
	if errors.Is(err, redis.Nil) {
		return ls, voluntree.Errorf(voluntree.ENOTFOUND, "unknown or expired login state")
	}
	if err != nil {
		return ls, fmt.Errorf("redisstore: take login state: %w", err)
	}
	if err := json.Unmarshal(b, &ls); err != nil {
		return ls, fmt.Errorf("redisstore: decode login state: %w", err)
	}
	return ls, nil
}
