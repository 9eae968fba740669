package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// franzHoldFloor is the shortest time a commit call may go unanswered before
// the franz-go engine holds records from handlers (franzHold). A healthy
// commit takes milliseconds, but on a loaded machine or behind a slow
// broker one can take some hundreds; below a second a hold would start for
// nothing, and each one stalls every partition of the member.
const franzHoldFloor = time.Second

// franzHoldAfter is how long a commit call may go unanswered before a hold
// starts. Twice CommitInterval: a member that commits every interval already
// runs with about that much handled-but-uncommitted work, so holding sooner
// would stop it for less than it accepts in normal running. Twice
// HeartbeatInterval: kgo keeps a commit waiting while the member joins and
// syncs, and a rebalance's join lasts about one heartbeat interval (members
// learn of it at their next heartbeat), so an ordinary cooperative
// rebalance does not stall the partitions it leaves in place.
func (c ConsumerGroupConfig) franzHoldAfter() time.Duration {
	return max(2*c.CommitInterval, 2*c.HeartbeatInterval, franzHoldFloor)
}

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
		cooperative: g.cfg.cooperative(), hold: &franzHold{after: g.cfg.franzHoldAfter(), log: g.log}}
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

	hold *franzHold // handing records to handlers stops while commits fail
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
		// A tick or request ready beside the period's end is picked at
		// random; committing then would delay the end by a whole commit,
		// which while commits fail is RebalanceTimeout each time. The
		// final stop commits (and reports) what is left.
		if s.ctx.Err() != nil {
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
		// When no claim has a mark pending, those whose marks failed are
		// gone (revoked or lost) and a hold has nothing left to guard;
		// without this it could outlive them, since only a commit that
		// is answered ends it. All claims, not cs: stop commits only the
		// claims it stops.
		if !s.pending() {
			s.hold.end("nothing left to commit")
		}
		return
	}
	g := s.e.g
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), g.cfg.RebalanceTimeout)
	defer cancel()
	failed := map[TopicPartition]bool{}
	settle := s.hold.committing()
	outcome, cause := commitAccepted, error(nil)
	s.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			outcome, cause = commitFailed, err
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
					if o := classifyCommitErr(err); o > outcome {
						outcome, cause = o, err
					}
					if !errors.Is(err, kerr.RebalanceInProgress) {
						g.pushError(fmt.Errorf("kafka: consumer group %s: committing %s/%d: %w", g.cfg.GroupName, t.Topic, p.Partition, err))
					}
				}
			}
		}
	})
	// CommitOffsetsSync returns only after its callback: outcome is final.
	settle(outcome, cause)
	for c, m := range marks {
		if !failed[c.tp] {
			c.committed = m
		}
	}
}

// pending reports whether a running claim has marks not yet committed.
// The caller holds commitMu, which guards committed.
func (s *franzSession) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.claims {
		if c.marked.Load() > c.committed {
			return true
		}
	}
	return false
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
	// With no partition left the hold has nothing to guard: the session it
	// protected has ended (an eager rebalance, a loss, the period's end),
	// and a new assignment starts unheld, as on Sarama. After the commit,
	// so that a failing last commit does not start a hold that outlives it.
	s.mu.Lock()
	none := len(s.claims) == 0
	s.mu.Unlock()
	if none {
		s.hold.end("no partitions left")
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
	// Not while held, checked per record: once a hold has begun, at most
	// the record being sent goes in.
	if !c.feeding && !c.closed {
		for len(rs) > 0 && c.s.hold.wait() == nil {
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
			if held := c.s.hold.wait(); held != nil {
				// The records wait here, still counted as held, so the
				// high marks pause the partition's fetching as for a slow
				// handler. Account for those already sent first, or a poll
				// loop waiting for room would not see it.
				c.moved(recs, bytes)
				recs, bytes = 0, 0
				select {
				case <-held:
				case <-c.cctx.Done():
					return
				}
			}
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

// franzHold stops a franz-go session handing new records to handlers while
// its commits fail, and lets them flow again when a commit succeeds.
//
// Why: when the group coordinator dies, Sarama's session ends within a few
// heartbeats and its handling stops. kgo keeps fetching from the partition
// leaders, which live, so the engine went on handing records to handlers
// for the seconds the member took to reach a new coordinator, while every
// commit failed; the member then lost its session and the next one handled
// all of it again (three brokers, coordinator killed at 10%: 18,710
// records handled twice, against Sarama's 226–1,404).
//
// When: a hold starts when a commit call has gone unanswered for
// franzHoldAfter (kgo retries an unreachable coordinator inside the call,
// so the call may take its whole RebalanceTimeout to fail), or when it
// returns a request error or a coordinator error (classifyCommitErr). It
// ends when a commit call is answered without one. A partition's own
// refusal (an authorisation error, say) neither starts nor keeps a hold: it
// repeats at every commit and would make the hold permanent. A membership
// error leaves the hold as it is: a revoke, a loss or the rebalance's end
// follows, and with it the end of the hold. It also ends when the session
// has no partition left (franzSession.stop) and when no claim has a mark
// left to commit (the claims whose marks failed are gone), so it never
// outlives the marks it guards. Marks stay pending while held (committed
// moves only on success), so the committer retries them at its next tick.
//
// Where: in each claim, between its queue and its records channel; neither
// the feeder nor push's direct path put a record into the channel while
// held. What was fetched meanwhile stays queued and the claim's high marks
// then pause the partition's fetching, as for a slow handler, which bounds
// the memory. What is already past that point is still handled: per
// partition at most franzClaimBuffer records in the channel, the one the
// claim loop has taken from it and the one being put in when the hold
// began. Nothing is dropped: a claim revoked while held leaves its queue
// uncommitted to the next owner, as always. The user's Pause
// (ConsumerGroup.assign) is a separate gate and is not touched.
type franzHold struct {
	after time.Duration
	log   *slog.Logger

	// gate is nil while records flow, else a channel closed when the hold
	// ends: one atomic load per record on the hot path.
	gate atomic.Pointer[chan struct{}]

	mu       sync.Mutex
	attempt  uint64    // commit calls begun: a late timer holds for its own call only
	inflight bool      // the call numbered attempt has not returned
	since    time.Time // when the hold began; zero when records flow
}

// commitOutcome is what a commit call says of the group's commits; higher
// is worse, so a response's partitions reduce to their worst.
type commitOutcome int

const (
	// commitAccepted: the coordinator answered; partitions it refused for
	// reasons of their own included.
	commitAccepted commitOutcome = iota
	// commitUnsettled: the membership is changing; a revoke or a loss
	// follows.
	commitUnsettled
	// commitFailed: no coordinator took the commit.
	commitFailed
)

// classifyCommitErr sorts a partition's commit error. The coordinator
// errors apply to the whole group: none of its commits can land.
func classifyCommitErr(err error) commitOutcome {
	switch {
	case errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorNotAvailable),
		errors.Is(err, kerr.CoordinatorLoadInProgress), errors.Is(err, kerr.RequestTimedOut):
		return commitFailed
	case errors.Is(err, kerr.RebalanceInProgress), errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.FencedInstanceID):
		return commitUnsettled
	default:
		return commitAccepted
	}
}

// wait returns nil while records may flow, else a channel closed when the
// hold ends.
func (h *franzHold) wait() <-chan struct{} {
	if p := h.gate.Load(); p != nil {
		return *p
	}
	return nil
}

// committing is called as a commit call with marks starts: it holds if the
// call is still out after h.after. The returned settle must be called when
// the call has returned, with what it said.
func (h *franzHold) committing() (settle func(commitOutcome, error)) {
	h.mu.Lock()
	h.attempt++
	n := h.attempt
	h.inflight = true
	h.mu.Unlock()
	t := time.AfterFunc(h.after, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.inflight && h.attempt == n {
			h.startLocked("commit unanswered", "unanswered_for", h.after)
		}
	})
	return func(o commitOutcome, err error) {
		t.Stop()
		h.mu.Lock()
		defer h.mu.Unlock()
		h.inflight = false
		switch o {
		case commitFailed:
			h.startLocked("commit failed", "error", err)
		case commitAccepted:
			h.endLocked("a commit succeeded")
		}
	}
}

// startLocked begins a hold unless one is on; logging under h.mu keeps
// the start and end messages in order.
func (h *franzHold) startLocked(reason string, args ...any) {
	if !h.since.IsZero() {
		return
	}
	h.since = time.Now()
	ch := make(chan struct{})
	h.gate.Store(&ch)
	h.log.Warn("commits are failing; holding records from handlers until a commit succeeds",
		append([]any{"reason", reason}, args...)...)
}

// end ends a hold, if one is on.
func (h *franzHold) end(reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endLocked(reason)
}

func (h *franzHold) endLocked(reason string) {
	if h.since.IsZero() {
		return
	}
	if p := h.gate.Swap(nil); p != nil {
		close(*p)
	}
	h.log.Info("commit hold ended; handing records to handlers again",
		"reason", reason, "held_for", time.Since(h.since).Round(time.Millisecond))
	h.since = time.Time{}
}
