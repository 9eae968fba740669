package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/smartystreets/goconvey/convey"

	"github.com/kafkahub/kafkahub/internal/testkit"
	"github.com/kafkahub/kafkahub/kafka"
	"github.com/kafkahub/kafkahub/kafkatest"
)

// within fails the spec if ch is not closed within d.
func within(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

func stateWithin(g *kafka.ConsumerGroup, s kafka.State, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return g.StateWait(ctx, s)
}

const specWait = 30 * time.Second

func TestConsumerGroupStateMachine(t *testing.T) {
	Convey("Given a consumer group whose cluster is not up yet", t, func() {
		if kafkatest.External() {
			SkipConvey("needs to start the embedded cluster on a chosen port", func() {})
			return
		}
		port := testkit.FreePort(t)
		topic := "spec-late"
		g := newGroup(t, &kafka.ConsumerGroupConfig{
			BrokerAddrs: []string{fmt.Sprintf("127.0.0.1:%d", port)}, Topics: []string{topic}, GroupName: "spec",
			MinRetryPeriod: 20 * time.Millisecond, MaxRetryPeriod: 200 * time.Millisecond,
		})

		Convey("it is Initialising and not initialised", func() {
			So(g.State(), ShouldEqual, kafka.Initialising)
			So(g.IsInitialised(), ShouldBeFalse)

			Convey("and StopAndWait returns at once: nothing is in flight", func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				So(g.StopAndWait(ctx), ShouldBeNil)
			})
		})

		Convey("when Start is called while initialising and the cluster then comes up", func() {
			g.Start()
			consuming := g.StateEntered(kafka.Consuming)
			kafkatest.NewCluster(t, kafkatest.Ports(port), kafkatest.SeedTopics(2, topic))

			Convey("it initialises and goes on to consume", func() {
				So(within(g.Channels().Initialised, specWait), ShouldBeTrue)
				So(within(consuming, specWait), ShouldBeTrue)
			})
		})

		Convey("when Start then Stop are called while initialising and the cluster comes up", func() {
			g.Start()
			g.Stop()
			stopped := g.StateEntered(kafka.Stopped)
			starting := g.StateEntered(kafka.Starting)
			kafkatest.NewCluster(t, kafkatest.Ports(port), kafkatest.SeedTopics(2, topic))

			Convey("the last request wins: it stays Stopped", func() {
				So(within(stopped, specWait), ShouldBeTrue)
				ctx, cancel := context.WithTimeout(context.Background(), specWait)
				defer cancel()
				So(g.StopAndWait(ctx), ShouldBeNil)
				So(g.State(), ShouldEqual, kafka.Stopped)
				select {
				case <-starting:
					So("Starting was entered", ShouldBeEmpty)
				default:
				}
			})
		})

		Convey("when it is closed before it ever connects", func() {
			ctx, cancel := context.WithTimeout(context.Background(), specWait)
			defer cancel()
			So(g.Close(ctx), ShouldBeNil)

			Convey("it is Closed, its channels are closed, and Start does nothing", func() {
				So(g.State(), ShouldEqual, kafka.Closed)
				So(within(g.Channels().Closed, time.Second), ShouldBeTrue)
				_, open := <-g.Channels().Errors
				So(open, ShouldBeFalse)
				g.Start()
				So(g.State(), ShouldEqual, kafka.Closed)
			})
		})
	})

	Convey("Given an initialised consumer group", t, func() {
		cluster := kafkatest.NewCluster(t)
		topic := cluster.NewTopic(t, 2)
		g := newGroup(t, &kafka.ConsumerGroupConfig{
			BrokerAddrs: cluster.Addrs(), Topics: []string{topic}, GroupName: kafkatest.UniqueName("spec"),
			HeartbeatInterval: 100 * time.Millisecond,
		})
		So(within(g.Channels().Initialised, specWait), ShouldBeTrue)
		So(stateWithin(g, kafka.Stopped, specWait), ShouldBeNil)

		Convey("Start goes through Starting to Consuming", func() {
			starting, consuming := g.StateEntered(kafka.Starting), g.StateEntered(kafka.Consuming)
			g.Start()
			So(within(starting, specWait), ShouldBeTrue)
			So(within(consuming, specWait), ShouldBeTrue)

			Convey("a second Start changes nothing", func() {
				g.Start()
				So(g.State(), ShouldEqual, kafka.Consuming)
			})

			Convey("Stop goes through Stopping to Stopped", func() {
				stopping, stopped := g.StateEntered(kafka.Stopping), g.StateEntered(kafka.Stopped)
				g.Stop()
				So(within(stopping, specWait), ShouldBeTrue)
				So(within(stopped, specWait), ShouldBeTrue)

				Convey("and Start consumes again", func() {
					g.Start()
					So(stateWithin(g, kafka.Consuming, specWait), ShouldBeNil)
				})
			})

			Convey("Close goes through Closing to Closed", func() {
				closing := g.StateEntered(kafka.Closing)
				ctx, cancel := context.WithTimeout(context.Background(), specWait)
				defer cancel()
				So(g.Close(ctx), ShouldBeNil)
				So(within(closing, time.Second), ShouldBeTrue)
				So(g.State(), ShouldEqual, kafka.Closed)

				Convey("and Close, Stop, Start and StopAndWait afterwards are harmless; StopAndWait says ErrClosed", func() {
					So(g.Close(ctx), ShouldBeNil)
					g.Stop()
					g.Start()
					So(g.StopAndWait(ctx), ShouldEqual, kafka.ErrClosed)
					So(g.State(), ShouldEqual, kafka.Closed)
				})
			})
		})

		Convey("Stop while joining the group ends Stopped", func() {
			g.Start()
			g.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), specWait)
			defer cancel()
			So(g.StopAndWait(ctx), ShouldBeNil)
			So(g.State(), ShouldEqual, kafka.Stopped)
		})

		Convey("Stop while Stopped is harmless", func() {
			g.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), specWait)
			defer cancel()
			So(g.StopAndWait(ctx), ShouldBeNil)
			So(g.State(), ShouldEqual, kafka.Stopped)
		})

		Convey("Start and Stop from many goroutines at once, then a final Stop, ends Stopped", func() {
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() {
					if i%2 == 0 {
						g.Start()
					} else {
						g.Stop()
					}
					_ = g.State()
				})
			}
			wg.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), specWait)
			defer cancel()
			So(g.StopAndWait(ctx), ShouldBeNil)
			So(g.State(), ShouldEqual, kafka.Stopped)
		})

		Convey("StateWait gives up when its context ends", func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			So(g.StateWait(ctx, kafka.Consuming), ShouldEqual, context.DeadlineExceeded)
		})

		Convey("an OK health update starts it and a CRITICAL one stops it", func() {
			now := time.Now()
			g.OnHealthChange(kafka.Health{Status: kafka.HealthOK, CheckedAt: now})
			So(stateWithin(g, kafka.Consuming, specWait), ShouldBeNil)
			g.OnHealthChange(kafka.Health{Status: kafka.HealthCritical, CheckedAt: now.Add(time.Second)})
			So(stateWithin(g, kafka.Stopped, specWait), ShouldBeNil)
		})
	})
}
