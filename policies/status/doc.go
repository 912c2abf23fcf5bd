// Package status tells admins, in each policy object's status, whether
// binderguard accepted it: an Accepted condition (True, or False with
// reason Invalid and the field-level reason) and observedGeneration, on
// RepoBans and LaunchPolicies, through the status subresource.
//
// Desired is the pure decision (what the status should say, and whether
// that differs from what it says); Writer applies it, writing only objects
// whose status must change, so a steady state costs no API writes.
//
// It must never change an object's spec, nor status fields other writers
// own (the webhook's matchedPods, the gate's live counters).
package status
