package tcphub

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/kafkahub/kafkahub/kafka"
)

// healthBody is the JSON body of HealthHandler.
type healthBody struct {
	Status      string    `json:"status"`
	Message     string    `json:"message,omitempty"`
	CheckedAt   time.Time `json:"checked_at"`
	Instance    string    `json:"instance"`
	ReplyTopic  string    `json:"reply_topic"`
	Connections int       `json:"connections"`
	Sessions    int       `json:"sessions"`
	Draining    bool      `json:"draining"`
}

// HealthHandler answers health checks: 200 when the Kafka producer's
// Checker reports OK, 503 otherwise, and 503 too before Start has
// succeeded and once Shutdown has begun (so a load balancer stops sending
// devices). The body is JSON:
//
//	{"status":"OK","checked_at":"...","instance":"gw-1","reply_topic":"tcphub.reply.gw-1","connections":3,"sessions":3,"draining":false}
//
// Each check is bounded by 5 s and by the HTTP request's context.
func (s *Server) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		s.mu.Lock()
		producer := s.producer
		s.mu.Unlock()
		body := healthBody{Instance: s.cfg.InstanceID, ReplyTopic: s.replyTopic, Draining: s.draining.Load()}
		body.Connections, body.Sessions = s.reg.counts()
		code := http.StatusServiceUnavailable
		switch {
		case producer == nil:
			body.Status, body.Message, body.CheckedAt = kafka.HealthCritical.String(), "not started", time.Now().UTC()
		default:
			h := producer.Checker(ctx)
			body.Status, body.Message, body.CheckedAt = h.Status.String(), h.Message, h.CheckedAt.UTC()
			if h.Status == kafka.HealthOK && !body.Draining {
				code = http.StatusOK
			}
			if body.Draining && body.Message == "" {
				body.Message = "draining"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	})
}
