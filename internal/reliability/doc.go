// Package reliability holds kafkahub's reliability suite: producers and
// consumers under broker loss, consumer churn, network faults and a cluster
// that is down at start, against a real three-node Apache Kafka cluster
// started by scripts/kafka. The tests need the build tag "reliability" and
// the environment set up by scripts/test-reliability; each prints its
// figures (sent, acknowledged, received, lost, duplicated, time).
package reliability
