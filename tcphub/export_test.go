package tcphub

// SetAnsweredHook makes the gateway built from c call f on the producer's
// delivery goroutine once a request has been answered.
func SetAnsweredHook(c *Config, f func()) { c.answered = f }
