package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := map[string]struct {
		args       []string
		usage      func(io.Writer)
		wantErr    error  // errors.Is target; nil = success
		wantMsg    string // in the error
		wantStdout string
	}{
		"good flags parse":                    {args: []string{"--name", "x"}},
		"-h prints the flag defaults":         {args: []string{"-h"}, wantErr: flag.ErrHelp, wantStdout: "-name"},
		"-h prints the given usage instead":   {args: []string{"-h"}, usage: func(w io.Writer) { io.WriteString(w, "usage: x") }, wantErr: flag.ErrHelp, wantStdout: "usage: x"},
		"an unknown flag is a usage error":    {args: []string{"--nope"}, wantErr: errUsage, wantMsg: "nope"},
		"a stray argument is a usage error":   {args: []string{"--name", "x", "extra", "more"}, wantErr: errUsage, wantMsg: "unexpected arguments: [extra more]"},
		"a bad value is a usage error":        {args: []string{"--n", "x"}, wantErr: errUsage, wantMsg: "-n"},
		"nothing is printed on a usage error": {args: []string{"--nope"}, wantErr: errUsage},
		"no arguments parse to the defaults":  {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.String("name", "", "a name")
			fs.Int("n", 0, "a number")
			var stdout bytes.Buffer
			err := parseFlags(fs, tc.args, &stdout, tc.usage)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err %q, want it to contain %q", err, tc.wantMsg)
			}
			if got := stdout.String(); tc.wantStdout == "" && got != "" || !strings.Contains(got, tc.wantStdout) {
				t.Errorf("stdout %q, want %q", got, tc.wantStdout)
			}
		})
	}
}
