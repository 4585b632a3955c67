package model

import (
	"testing"
	"time"
)

// TestMoodsDigest: the digest ignores order and follows every field a
// compare reads.
func TestMoodsDigest(t *testing.T) {
	when := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	a := &Mood{ID: "507f1f77bcf86cd799439011", User: "u", Text: "sunny", When: when, Rkey: "3kh5dye2qpc2a"}
	b := &Mood{ID: "507f1f77bcf86cd799439012", User: "u", Text: "rain", When: when}
	base := MoodsDigest([]*Mood{a, b})
	if MoodsDigest([]*Mood{b, a}) != base {
		t.Fatal("the digest depends on the order")
	}
	if MoodsDigest(nil) == MoodsDigest([]*Mood{}) && MoodsDigest(nil) == base {
		t.Fatal("no moods digests like two")
	}
	for name, change := range map[string]func(m *Mood){
		"text":    func(m *Mood) { m.Text = "cloudy" },
		"when":    func(m *Mood) { m.When = m.When.Add(time.Millisecond) },
		"deleted": func(m *Mood) { m.Deleted = true },
		"rkey":    func(m *Mood) { m.Rkey = "" },
		"id":      func(m *Mood) { m.ID = "507f1f77bcf86cd799439013" },
	} {
		c := *a
		change(&c)
		if MoodsDigest([]*Mood{&c, b}) == base {
			t.Errorf("a change of %s leaves the digest as it was", name)
		}
	}
	// Text boundaries cannot be shifted between fields.
	x := &Mood{ID: "507f1f77bcf86cd799439011", Text: "a\x00b"}
	y := &Mood{ID: "507f1f77bcf86cd799439011", Text: "a"}
	if MoodsDigest([]*Mood{x}) == MoodsDigest([]*Mood{y}) {
		t.Fatal("different texts digest alike")
	}
	if !(&CleanPass{Rev: "r", Moods: base}).Same(&CleanPass{Rev: "r", Moods: base}) || (&CleanPass{Moods: base}).Same(&CleanPass{Moods: base}) {
		t.Fatal("Same")
	}
}
