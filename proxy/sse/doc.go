// Package sse reads and writes the Server-Sent-Events framing that
// BinderHub uses on GET /build: "data: <json>\n\n" events and
// ":keepalive" comments.
//
// It is shared by the launch gate, the BinderHub simulator and the
// launch-storm client, so all three agree on the wire. It only frames
// bytes; it must never decide what a phase means for a launch.
package sse
