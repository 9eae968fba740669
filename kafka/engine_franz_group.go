package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A partition's fetching pauses when its claim holds franzHighRecords
// records or franzHighBytes bytes not yet in the records channel, and
// resumes once it is down to half of both: the bound on a slow partition's
// memory, which keeps it from holding up the poll loop and the other
// partitions. Resuming at half, not at empty, lets the next fetch arrive
// while the claim still has work; kgo drops (and later fetches again) what
// it had buffered for a paused partition, so the gap between the marks is
// several fetches wide.
const (
	franzHighRecords = 8192
	franzHighBytes   = 4 << 20
	// franzFullWait is how long the poll loop waits for a full claim
	// before pausing its partition: Sarama's MaxProcessingTime.
	franzFullWait = 100 * time.Millisecond
)

// franzClaimBuffer is the capacity of a claim's records channel, Sarama's
// default ChannelBufferSize: what a worker's burst takes without blocking.
const franzClaimBuffer = 256

// franzGroup is the franz-go engine of a ConsumerGroup. Each consumption
// period gets its own kgo group client, because kgo leaves the group when
// the client closes.
type franzGroup struct {
	g     *ConsumerGroup
	opts  []kgo.Opt // connection and group settings; callbacks are per period
	addrs []string

	// mu guards the fields below and orders the pause and resume calls
	// made on the client.
	mu   sync.Mutex
	cl   *kgo.Client                 // the current period's, nil between periods
	user map[TopicPartition]struct{} // paused by ConsumerGroup.Pause
	full map[TopicPartition]struct{} // paused because the claim's queue is full
}

func newFranzGroup(g *ConsumerGroup) (*franzGroup, error) {
	opts, err := g.cfg.franzOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts[:len(opts):len(opts)]...)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	// The connection attempt's client only proves the cluster answers;
	// consuming needs a group client per period.
	addrs, err := franzConnect(cl, g.cfg.DialTimeout)
	cl.Close()
	if err != nil {
		return nil, fmt.Errorf("connecting to %v: %w", g.cfg.BrokerAddrs, err)
	}
	return &franzGroup{g: g, opts: opts, addrs: addrs,
		user: map[TopicPartition]struct{}{}, full: map[TopicPartition]struct{}{}}, nil
}

// franzOpts translates a defaulted consumer config into kgo options.
func (c ConsumerGroupConfig) franzOpts() ([]kgo.Opt, error) {
	opts, err := franzOpts(c.BrokerAddrs, c.KafkaVersion, c.ClientID, c.DialTimeout, c.SecurityConfig)
	if err != nil {
		return nil, err
	}
	reset := kgo.NewOffset().AtStart()
	if c.InitialOffset == OffsetNewest {
		reset = kgo.NewOffset().AtEnd()
	}
	// Strategy names on the wire equal Sarama's, so members of both
	// engines agree in one group.
	balancers := []kgo.GroupBalancer{franzBalancer(c.RebalanceStrategy)}
	if c.RebalanceFallback != "" {
		balancers = append(balancers, franzBalancer(c.RebalanceFallback))
	}
	if c.GroupInstanceID != "" {
		for i, b := range balancers {
			if n := b.ProtocolName(); n == string(RebalanceRange) || n == string(RebalanceRoundRobin) {
				balancers[i] = staticJoinBalancer{b}
			}
		}
	}
	opts = append(opts,
		kgo.ConsumerGroup(c.GroupName),
		kgo.ConsumeTopics(c.Topics...),
		kgo.DisableAutoCommit(), // the engine commits what handlers marked
		kgo.Balancers(balancers...),
		kgo.ConsumeResetOffset(reset),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(c.HeartbeatInterval),
		kgo.RebalanceTimeout(c.RebalanceTimeout),
		// Sarama's default: a partition resumed after a pause waits at most
		// this for a fetch already waiting on the others (kgo's is 5 s).
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if c.GroupInstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.GroupInstanceID))
	}
	return opts, nil
}

// staticJoinBalancer keeps a static member's join metadata the same across
// restarts. kgo's range and round-robin metadata carry the member's last
// generation, which a restarted client does not know; the broker takes the
// changed metadata of a rejoining static member for a changed subscription
// and rebalances, which static membership exists to avoid. Neither
// strategy reads the generation, so it is always sent as -1. (Sticky
// strategies read the owned partitions and generation, and keep them.)
type staticJoinBalancer struct{ kgo.GroupBalancer }

func (b staticJoinBalancer) JoinGroupMetadata(interests []string, _ map[string][]int32, _ int32) []byte {
	return b.GroupBalancer.JoinGroupMetadata(interests, nil, -1)
}

// franzBalancer maps a strategy to kgo's balancer of the same name on the
// wire, so members of both engines agree in one group.
func franzBalancer(r RebalanceStrategy) kgo.GroupBalancer {
	switch r {
	case RebalanceRoundRobin:
		return kgo.RoundRobinBalancer()
	case RebalanceSticky:
		return kgo.StickyBalancer()
	case RebalanceCooperativeSticky:
		return kgo.CooperativeStickyBalancer()
	default:
		return kgo.RangeBalancer()
	}
}

func (e *franzGroup) brokers() []string { return e.addrs }

// close has nothing left to release: each period closes its own client.
func (e *franzGroup) close() error { return nil }

func (e *franzGroup) consume(ctx context.Context) {
	g := e.g
	s := &franzSession{e: e, ctx: ctx, claims: map[TopicPartition]*franzClaim{},
		cooperative: g.cfg.cooperative()}
	opts := append(slices.Clip(e.opts),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		g.pushError(fmt.Errorf("kafka: consumer group %s: creating client: %w", g.cfg.GroupName, err))
		<-ctx.Done()
		return
	}
	s.cl = cl
	e.setClient(cl)

	committerDone := make(chan struct{})
	go func() {
		defer close(committerDone)
		s.committer()
	}()
	s.poll()
	<-committerDone
	// Stop every claim and commit while the member is still in the group;
	// kgo's final revoke in Close then finds nothing left.
	s.stop(s.owned(), true)
	cl.Close() // leaves the group, unless the member is static
	e.setClient(nil)
}

// setClient installs the period's client (re-applying every pause) or
// removes it.
func (e *franzGroup) setClient(cl *kgo.Client) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cl = cl
	clear(e.full)
	if cl == nil {
		return
	}
	clear(e.user)
	for _, tp := range e.g.assign.pausedList() {
		e.user[tp] = struct{}{}
	}
	if len(e.user) > 0 {
		cl.PauseFetchPartitions(fromTPs(mapKeys(e.user)))
	}
}

func (e *franzGroup) pause(tps []TopicPartition) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, tp := range tps {
		e.user[tp] = struct{}{}
	}
	if e.cl != nil {
		e.cl.PauseFetchPartitions(fromTPs(tps))
	}
}

func (e *franzGroup) resume(tps []TopicPartition) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var resumed []TopicPartition
	for _, tp := range tps {
		delete(e.user, tp)
		if _, full := e.full[tp]; !full {
			resumed = append(resumed, tp)
		}
	}
	if e.cl != nil && len(resumed) > 0 {
		e.cl.ResumeFetchPartitions(fromTPs(resumed))
	}
}

// throttle pauses or resumes fetching of a partition for back-pressure,
// leaving a user's pause in place.
func (e *franzGroup) throttle(tp TopicPartition, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if on {
		e.full[tp] = struct{}{}
		if e.cl != nil {
			e.cl.PauseFetchPartitions(fromTPs([]TopicPartition{tp}))
		}
		return
	}
	if _, ok := e.full[tp]; !ok {
		return
	}
	delete(e.full, tp)
	if _, paused := e.user[tp]; !paused && e.cl != nil {
		e.cl.ResumeFetchPartitions(fromTPs([]TopicPartition{tp}))
	}
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// franzSession is one consumption period on one kgo group client.
type franzSession struct {
	e           *franzGroup
	ctx         context.Context // the period's
	cl          *kgo.Client
	cooperative bool

	// mu guards claims and serialises starting claims with stopping them.
	mu     sync.Mutex
	claims map[TopicPartition]*franzClaim

	commitMu sync.Mutex // one commit at a time, so committed stays ordered
}

// poll fetches until the period ends, handing each partition's records to
// its claim.
func (s *franzSession) poll() {
	g := s.e.g
	for {
		fs := s.cl.PollRecords(s.ctx, 10_000)
		if s.ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			g.pushError(fmt.Errorf("kafka: consumer group %s: %s/%d: %w", g.cfg.GroupName, topic, partition, err))
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			s.mu.Lock()
			c := s.claims[TopicPartition{p.Topic, p.Partition}]
			s.mu.Unlock()
			// No claim: the partition was revoked after this fetch; its
			// records are uncommitted and go to the next owner.
			if c != nil {
				c.hw.Store(p.HighWatermark)
				c.push(p.Records)
			}
		})
	}
}

// committer commits the marks every CommitInterval and whenever a
// Message.Commit asks, until the period ends.
func (s *franzSession) committer() {
	g := s.e.g
	tick := time.NewTicker(g.cfg.CommitInterval)
	defer tick.Stop()
	for {
		requested := false
		select {
		case <-tick.C:
		case <-g.commits.ch:
			requested = true
		case <-s.ctx.Done():
			return
		}
		s.mu.Lock()
		cs := mapValues(s.claims)
		s.mu.Unlock()
		s.commit(cs)
		if requested {
			g.commitDone()
		}
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// commit commits the claims' marks that are newer than their last commit,
// synchronously.
func (s *franzSession) commit(cs []*franzClaim) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	offsets := map[string]map[int32]kgo.EpochOffset{}
	marks := make(map[*franzClaim]int64, len(cs))
	for _, c := range cs {
		if m := c.marked.Load(); m > c.committed {
			if offsets[c.tp.Topic] == nil {
				offsets[c.tp.Topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[c.tp.Topic][c.tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: m}
			marks[c] = m
		}
	}
	if len(marks) == 0 {
		return
	}
	g := s.e.g
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), g.cfg.RebalanceTimeout)
	defer cancel()
	failed := map[TopicPartition]bool{}
	s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			for c := range marks {
				failed[c.tp] = true
			}
			g.pushError(fmt.Errorf("kafka: consumer group %s: committing: %w", g.cfg.GroupName, err))
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					failed[TopicPartition{t.Topic, p.Partition}] = true
					if !errors.Is(err, kerr.RebalanceInProgress) {
						g.pushError(fmt.Errorf("kafka: consumer group %s: committing %s/%d: %w", g.cfg.GroupName, t.Topic, p.Partition, err))
					}
				}
			}
		}
	})
	for c, m := range marks {
		if !failed[c.tp] {
			c.committed = m
		}
	}
}

// owned lists the partitions with a running claim.
func (s *franzSession) owned() []TopicPartition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return mapKeys(s.claims)
}

// assigned is kgo's OnPartitionsAssigned: report, then start the claims.
func (s *franzSession) assigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return // the period is over; its final stop has run or is running
	}
	var tps []TopicPartition
	for _, tp := range toTPs(m) {
		if _, ok := s.claims[tp]; !ok {
			tps = append(tps, tp)
		}
	}
	if len(tps) == 0 {
		return
	}
	_, generation := cl.GroupMetadata()
	s.e.g.assigned(s.ctx, tps, generation)
	for _, tp := range tps {
		c := newFranzClaim(s, tp)
		s.claims[tp] = c
		c.start()
	}
}

// revoked is kgo's OnPartitionsRevoked: the partitions move only once it
// returns. An eager strategy revokes everything at each rebalance.
func (s *franzSession) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.stop(toTPs(m), true)
	if !s.cooperative && s.ctx.Err() == nil {
		s.e.g.rebalancing()
	}
}

// lost is kgo's OnPartitionsLost: the member is out of the group, so the
// marks cannot be committed; the next owner handles those records again.
func (s *franzSession) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.stop(toTPs(m), false)
	if s.ctx.Err() == nil {
		s.e.g.rebalancing()
	}
}

// stop ends the claims of tps: cancels their contexts, waits for their
// loops, commits their marks (when commit is set) and reports them revoked.
func (s *franzSession) stop(tps []TopicPartition, commit bool) {
	s.mu.Lock()
	var cs []*franzClaim
	for _, tp := range tps {
		if c, ok := s.claims[tp]; ok {
			delete(s.claims, tp)
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	if len(cs) == 0 {
		return
	}
	for _, c := range cs {
		c.cancel()
	}
	gone := make([]TopicPartition, len(cs))
	for i, c := range cs {
		c.done.Wait()
		s.e.throttle(c.tp, false)
		gone[i] = c.tp
	}
	if commit {
		s.commit(cs)
		s.e.g.commitDone()
	}
	slices.SortFunc(gone, compareTP)
	s.e.g.revoked(context.WithoutCancel(s.ctx), gone)
}

// franzClaim is one assigned partition: a queue the poll loop fills, a
// feeder goroutine moving it into the records channel, and the claim loop.
type franzClaim struct {
	s      *franzSession
	tp     TopicPartition
	cctx   context.Context
	cancel context.CancelFunc
	ch     chan *kgo.Record // closed by the feeder when the claim ends, under mu
	wake   chan struct{}
	room   chan struct{}  // the feeder made room in a full claim
	done   sync.WaitGroup // the feeder and the claim loop

	mu        sync.Mutex
	queue     []*kgo.Record
	feeding   bool // the feeder holds or will take records: push must queue
	closed    bool // ch is closed
	heldRecs  int  // queued or taken by the feeder, not yet in ch
	heldBytes int  // their keys and values
	full      bool // fetching paused for back-pressure

	hw        atomic.Int64 // the high watermark of the last fetch; -1: none yet
	marked    atomic.Int64 // the next offset to commit; -1: none yet
	committed int64        // the last committed; under session.commitMu
}

func newFranzClaim(s *franzSession, tp TopicPartition) *franzClaim {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &franzClaim{s: s, tp: tp, cctx: ctx, cancel: cancel,
		ch: make(chan *kgo.Record, franzClaimBuffer), wake: make(chan struct{}, 1), room: make(chan struct{}, 1), committed: -1}
	c.marked.Store(-1)
	c.hw.Store(-1)
	return c
}

func (c *franzClaim) start() {
	c.done.Add(2)
	go func() {
		defer c.done.Done()
		c.feed()
	}()
	go func() {
		defer c.done.Done()
		runClaim[*kgo.Record](c.s.e.g, c)
	}()
}

// push queues fetched records. When the claim then holds too many, the
// poll loop waits up to franzFullWait for the claim to make room (a claim
// that is merely taking its turn with the workers soon does), and only then
// pauses the partition's fetching until the feeder has moved half of them
// on. Pausing at once would make kgo drop and fetch again what it had
// buffered, at every turn.
func (c *franzClaim) push(rs []*kgo.Record) {
	n := 0
	for _, r := range rs {
		n += len(r.Key) + len(r.Value)
	}
	c.mu.Lock()
	// While the feeder has nothing in hand, records go straight into the
	// channel as far as it has room: no hop through the feeder.
	if !c.feeding && !c.closed {
		for len(rs) > 0 {
			select {
			case c.ch <- rs[0]:
				n -= len(rs[0].Key) + len(rs[0].Value)
				rs = rs[1:]
				continue
			default:
			}
			break
		}
	}
	if len(rs) == 0 {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, rs...)
	c.feeding = true
	c.heldRecs += len(rs)
	c.heldBytes += n
	over := !c.full && c.over()
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	if !over {
		return
	}
	t := time.NewTimer(franzFullWait)
	defer t.Stop()
	for {
		select {
		case <-c.room:
		case <-t.C:
			c.mu.Lock()
			if !c.full && c.over() {
				c.full = true
				c.s.e.throttle(c.tp, true)
			}
			c.mu.Unlock()
			return
		case <-c.cctx.Done():
			return
		}
		c.mu.Lock()
		over = c.over()
		c.mu.Unlock()
		if !over {
			return
		}
	}
}

func (c *franzClaim) over() bool {
	return c.heldRecs >= franzHighRecords || c.heldBytes >= franzHighBytes
}

// moved accounts for records the feeder put into the channel: it tells a
// waiting poll loop there is room, and resumes fetching once the claim
// holds half the high marks.
func (c *franzClaim) moved(recs, bytes int) {
	c.mu.Lock()
	c.heldRecs -= recs
	c.heldBytes -= bytes
	if c.full && c.heldRecs <= franzHighRecords/2 && c.heldBytes <= franzHighBytes/2 {
		c.full = false
		c.s.e.throttle(c.tp, false)
	}
	room := !c.over()
	c.mu.Unlock()
	if room {
		select {
		case c.room <- struct{}{}:
		default:
		}
	}
}

// feed moves queued records into the records channel, in order, until the
// claim ends; it owns and closes the channel.
func (c *franzClaim) feed() {
	defer func() {
		c.mu.Lock()
		c.closed = true
		close(c.ch)
		c.mu.Unlock()
	}()
	for {
		select {
		case <-c.wake:
		case <-c.cctx.Done():
			return
		}
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		if len(batch) == 0 {
			c.feeding = false
		}
		c.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		recs, bytes := 0, 0
		for _, r := range batch {
			select {
			case c.ch <- r:
			case <-c.cctx.Done():
				return
			}
			recs++
			bytes += len(r.Key) + len(r.Value)
			if recs == 256 {
				c.moved(recs, bytes)
				recs, bytes = 0, 0
			}
		}
		c.moved(recs, bytes)
		// Wake again: what was queued meanwhile, or else the end of
		// feeding, when push may send directly again.
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *franzClaim) topic() string               { return c.tp.Topic }
func (c *franzClaim) partition() int32            { return c.tp.Partition }
func (c *franzClaim) ctx() context.Context        { return c.cctx }
func (c *franzClaim) records() <-chan *kgo.Record { return c.ch }
func (c *franzClaim) highWater() int64            { return c.hw.Load() }
func (c *franzClaim) convert(r *kgo.Record) record {
	rec := record{topic: r.Topic, partition: r.Partition, offset: r.Offset,
		key: r.Key, value: r.Value, headers: fromFranzHeaders(r.Headers), timestamp: r.Timestamp}
	return rec
}

// mark only moves the position forward, as Sarama's MarkOffset does.
func (c *franzClaim) mark(offset int64) {
	for {
		cur := c.marked.Load()
		if offset+1 <= cur || c.marked.CompareAndSwap(cur, offset+1) {
			return
		}
	}
}
