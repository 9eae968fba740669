package device

import "context"

// traceParent is the request's tp: what Options.TraceParent returns, or ""
// without it. A panic in it drops the trace, not the request.
func (c *Client) traceParent(ctx context.Context) (tp string) {
	if c.opts.TraceParent == nil {
		return ""
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("TraceParent panicked; request sent without tp", "panic", r)
			tp = ""
		}
	}()
	return c.opts.TraceParent(ctx)
}
