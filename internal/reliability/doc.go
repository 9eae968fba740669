// Package reliability holds kafkahub's reliability suite, run against a real
// three-node Apache Kafka cluster started by scripts/kafka: producers and
// consumers while a partition leader or the group coordinator is crashed
// (SIGKILL), under network faults and a 30 s blackhole behind toxiproxy,
// with the cluster down at start, consumer rolling restarts, and the
// gateway under broker faults and when one of three instances (child
// processes of the test binary) is killed. The tests need the build tag
// "reliability" and the environment set up by scripts/test-reliability;
// each prints one FIGURES line, and every figure the README quotes is one
// of its assertions.
package reliability
