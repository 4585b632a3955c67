package model

// ValidateRecord checks a decoded record against the lexicon and returns
// why it is unusable, or "" when it is fine. The back-reference is
// normalised to lower case first (records written by other tools may carry
// an upper-case id).
func ValidateRecord(v *RecordValue) string {
	if v == nil {
		return "record missing"
	}
	v.Ref, v.MongoID = NormalizeID(v.Ref), NormalizeID(v.MongoID)
	switch {
	case v.MoodID() == "":
		return "no ref or mongoId"
	case !ValidID(v.MoodID()):
		return "ref is not a 24-hex ObjectID"
	case v.Mood == "":
		return "mood missing"
	case len([]rune(v.Mood)) > MaxLen:
		return "mood longer than 5000 characters"
	case v.When == "":
		return "when missing"
	}
	return ""
}
