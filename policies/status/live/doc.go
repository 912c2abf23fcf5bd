// Package live writes live counters into policy status. For
// LaunchPolicies: status.waiters (launches held under the policy) and
// status.hotSpecs (its busiest specs, at most 16, each with what its
// build is doing: starting, building or releasing), stamped with
// status.countersReportedAt, summed over every replica's gate.
//
// Each replica's gate knows only the launches it holds itself, so the
// elected replica gathers every replica's Load (see cmd/binderguard: GET
// /state on each gate behind the headless gate Service) and hands them
// here. Sum and Desired are the pure decision (what each status should
// say, and whether it differs from what it says); Writer applies it,
// writing only objects whose counters changed.
//
// It also counts, per RepoBan, the launches the gate refused and the pods
// the webhook refused (Tally): those are events, so each replica adds its
// own share to the ban's status (FlushBans) instead of the leader summing
// states.
//
// It must never change an object's spec, nor status fields other writers
// own (the Accepted condition and observedGeneration of policies/status,
// the webhook's matchedPods), and LaunchPolicy counters must never be
// written by a replica that is not the elected one: its caller decides
// that.
package live
