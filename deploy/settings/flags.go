package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Source is where a setting's value came from.
type Source int

// The sources, weakest first: a flag wins over the variable, the variable
// over the default.
const (
	FromDefault Source = iota
	FromEnv
	FromFlag
)

// where names the source of s's value as an error or help text says it.
func (src Source) where(s *Setting) string {
	switch src {
	case FromFlag:
		return "--" + s.Name + " (command line)"
	case FromEnv:
		return "$" + s.Env + " (environment)"
	}
	return "default of --" + s.Name
}

// parse parses raw, which came from src, as a value of s. Its error names
// the flag or variable and quotes raw only when s is not secret.
func (s *Setting) parse(raw string, src Source) (any, error) {
	v, err := s.Kind.parse(raw)
	switch {
	case err == nil:
		return v, nil
	case s.Secret:
		return nil, fmt.Errorf("%s, value not shown: %v", src.where(s), err)
	}
	return nil, fmt.Errorf("%s: %q is %v", src.where(s), raw, err)
}

// value is a setting bound on a flag set. Set only keeps the command
// line's text: parsing waits for Apply, so that the flag package (which
// quotes a value it cannot set) never sees a value fail.
type value struct {
	s      *Setting
	dst    any
	raw    string
	given  bool
	source Source
}

// String is the built-in default: what the flag package may print.
func (v *value) String() string {
	if v == nil || v.s == nil {
		return ""
	}
	return v.s.Default
}

func (v *value) Set(raw string) error {
	v.raw, v.given = raw, true
	return nil
}

// IsBoolFlag lets a bool setting be given as --name alone.
func (v *value) IsBoolFlag() bool { return v != nil && v.s != nil && v.s.Kind.Name == Bool.Name }

// Bind binds the setting named name onto fs, to be stored in dst (a
// pointer to the kind's Go type) by Apply. It panics on a name that is not
// in the table or a dst of the wrong type: both are bugs that any run of
// the command shows.
func Bind(fs *flag.FlagSet, name string, dst any) {
	s := Lookup(name)
	if s == nil {
		panic("settings: no setting " + name)
	}
	def, err := s.parse(s.Default, FromDefault)
	if err != nil {
		panic("settings: " + err.Error())
	}
	if err := assign(dst, def); err != nil {
		panic("settings: --" + name + ": " + err.Error())
	}
	fs.Var(&value{s: s, dst: dst}, name, s.Help)
}

func assign(dst, v any) error {
	d := reflect.ValueOf(dst)
	if d.Kind() != reflect.Pointer || d.IsNil() || d.Elem().Type() != reflect.TypeOf(v) {
		return fmt.Errorf("bound to a %T, want a *%T", dst, v)
	}
	d.Elem().Set(reflect.ValueOf(v))
	return nil
}

// Apply gives every setting bound on fs its value, after fs.Parse: the
// command line's, else the environment's (getenv; an empty variable counts
// as unset), else the default. Every value that does not parse is
// reported, each naming its flag or variable.
func Apply(fs *flag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := f.Value.(*value)
		if !ok {
			return
		}
		raw, src := v.s.Default, FromDefault
		if v.given {
			raw, src = v.raw, FromFlag
		} else if e := getenv(v.s.Env); e != "" {
			raw, src = e, FromEnv
		}
		x, err := v.s.parse(raw, src)
		if err != nil {
			errs = append(errs, err)
			return
		}
		_ = assign(v.dst, x) // the type was checked by Bind
		v.source = src
	})
	return errors.Join(errs...)
}

// SourceOf is where the value of the setting bound as name on fs came
// from, once Apply ran.
func SourceOf(fs *flag.FlagSet, name string) Source {
	if f := fs.Lookup(name); f != nil {
		if v, ok := f.Value.(*value); ok {
			return v.source
		}
	}
	return FromDefault
}

// IsSetting reports whether the flag is a setting of the table (not a
// command's own flag such as --user).
func IsSetting(f *flag.Flag) bool {
	_, ok := f.Value.(*value)
	return ok
}

// PrintUsage writes the help of fs: every flag with its help; for a
// setting also its variable, its built-in default, and, when the command
// line so far or the environment (getenv) sets it, where its value comes
// from and what it is — never the value of a secret setting.
func PrintUsage(w io.Writer, fs *flag.FlagSet, getenv func(string) string) {
	fmt.Fprintf(w, "Usage of %s:\n", fs.Name())
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		v, isSetting := f.Value.(*value)
		if isSetting {
			kind = v.s.Kind.Name
		}
		if kind == "bool" {
			kind = ""
		}
		fmt.Fprintf(w, "  -%s", f.Name)
		if kind != "" {
			fmt.Fprintf(w, " %s", kind)
		}
		fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
		if !isSetting {
			if def := f.DefValue; def != "" && def != "0" && def != "false" {
				if kind == "string" {
					def = fmt.Sprintf("%q", def)
				}
				fmt.Fprintf(w, " (default %s)", def)
			}
			fmt.Fprintln(w)
			return
		}
		fmt.Fprintln(w)
		line := "$" + v.s.Env + ", " + defaultText(v.s)
		if now := nowText(v, getenv); now != "" {
			line += "; " + now
		}
		fmt.Fprintf(w, "    \t%s\n", line)
	})
}

func defaultText(s *Setting) string {
	if s.Default == "" {
		return "no default"
	}
	if v, _ := s.Kind.parse(s.Default); reflect.TypeOf(v).Kind() == reflect.String {
		return fmt.Sprintf("default %q", s.Default)
	}
	return "default " + s.Default
}

// nowText says where the value in effect comes from, when not from the
// default.
func nowText(v *value, getenv func(string) string) string {
	raw, src := "", FromDefault
	if v.given {
		raw, src = v.raw, FromFlag
	} else if e := getenv(v.s.Env); e != "" {
		raw, src = e, FromEnv
	}
	name := "--" + v.s.Name
	if src == FromEnv {
		name = "$" + v.s.Env
	}
	switch {
	case src == FromDefault:
		return ""
	case v.s.Secret:
		return "now set by " + name + " (not shown: it may hold a credential)"
	}
	return fmt.Sprintf("now %q, set by %s", raw, name)
}
