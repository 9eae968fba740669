package kafka

// FranzClaimBuffer lets the external tests state their bounds in terms of
// the franz-go engine's claim channel rather than a copy of its value.
const FranzClaimBuffer = franzClaimBuffer
