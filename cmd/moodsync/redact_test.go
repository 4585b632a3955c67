package main

import (
	"strings"
	"testing"
)

func TestRedactURLHidesEveryPassword(t *testing.T) {
	for _, raw := range []string{
		"nats://moodsync:s3cret@nats1.example.com:4222,nats://moodsync:s3cret@nats2.example.com:4222",
		"mongodb://moodsync:s3cret@db1.example.com,db2.example.com,db3.example.com/?replicaSet=rs0&authSource=admin",
		"mongodb://moodsync:s3cret%zz@db1.example.com/", // unparseable escape
		"nats://tok:s3cret@[::1:4222", // unparseable host
	} {
		got := redactURL(raw)
		if strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q: password shown", raw, got)
		}
		if !strings.Contains(got, "example.com") && !strings.Contains(got, "::1") {
			t.Errorf("redactURL(%q) = %q: host lost", raw, got)
		}
	}
}
