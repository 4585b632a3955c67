package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/deploy/settings"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
	"github.com/whistlegraph/moodsync/reconcile/mongostore"
)

// urlForm is one way a credential rides in a URL setting, in a form the
// setting's driver accepts. value builds it around a host (host:port).
type urlForm struct {
	name    string
	setting string
	value   func(host string) string
	// secrets are the pieces that must never be shown, as written and as
	// the parsers decode them.
	secrets []string
	// live: moodsync can work against a reachable server with it (the
	// embedded FerretDB supports no authentication).
	live bool
}

// nkeySeed is an nkey user seed (the form `nats://SEED@host` carries).
const nkeySeed = "SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4"

var urlForms = []urlForm{
	{"NATS user and password", "nats-url", func(h string) string { return "nats://moodsync:S3cretNatsPw@" + h },
		[]string{"S3cretNatsPw"}, true},
	{"NATS token", "nats-url", func(h string) string { return "nats://S3cretNatsToken@" + h },
		[]string{"S3cretNatsToken"}, true},
	{"NATS nkey seed", "nats-url", func(h string) string { return "nats://" + nkeySeed + "@" + h },
		[]string{nkeySeed}, true},
	{"several NATS URLs", "nats-url", func(h string) string {
		return "nats://moodsync:S3cretListPw@" + h + ", nats://S3cretListToken@" + h + "," + h
	}, []string{"S3cretListPw", "S3cretListToken"}, true},
	{"NATS password with escaped punctuation", "nats-url", func(h string) string { return "tls://moodsync:p%2CS3cretEsc%40a%3Ab%25@" + h },
		[]string{"S3cretEsc", "p,S3cretEsc@a:b%"}, false},
	{"NATS password that does not parse", "nats-url", func(h string) string { return "nats://moodsync:S3cretBad%zz@" + h },
		[]string{"S3cretBad"}, false},

	{"MongoDB, several hosts, options", "mongo-uri", func(h string) string {
		return "mongodb://moodsync:S3cretMongoPw@" + h + ",127.0.0.1:2,127.0.0.1:3/aesthetic?authSource=admin&connectTimeoutMS=5000"
	}, []string{"S3cretMongoPw"}, false},
	{"MongoDB password with escaped , @ : %", "mongo-uri", func(h string) string {
		return "mongodb://moodsync:p%2C%40%3A%25S3cretPunct@" + h + ",127.0.0.1:2/?authSource=admin"
	}, []string{"S3cretPunct", "p,@:%S3cretPunct", "p%2C%40%3A%25S3cretPunct"}, false},
	{"MongoDB password with raw , @ : %", "mongo-uri", func(h string) string { return "mongodb://moodsync:p,S3cret@Raw:x%@" + h + "/" },
		[]string{"S3cret@Raw", "p,S3cret", "Raw:x%"}, false},
	{"MongoDB secret in options", "mongo-uri", func(h string) string {
		return "mongodb://" + h + "/?appName=S3cretAppName&connectTimeoutMS=5000"
	}, []string{"S3cretAppName"}, true},
	{"MongoDB X.509 subject as user", "mongo-uri", func(h string) string {
		return "mongodb://CN%3DS3cretSubject@" + h + "/?authMechanism=MONGODB-X509&tls=true"
	}, []string{"S3cretSubject"}, false},

	{"PDS user and password", "pds-url", func(h string) string { return "http://admin:S3cretPdsPw@" + h },
		[]string{"S3cretPdsPw"}, true},
	{"PDS token, comma in it", "pds-url", func(h string) string { return "http://S3cret,PdsToken@" + h },
		[]string{"S3cret,PdsToken", "S3cret%2CPdsToken"}, true},
	{"PLC token", "plc-url", func(h string) string { return "http://S3cretPlcToken@" + h },
		[]string{"S3cretPlcToken"}, true},
	{"PLC password in query", "plc-url", func(h string) string { return "http://" + h + "/?key=S3cretPlcKey" },
		[]string{"S3cretPlcKey"}, true},
	{"firehose token in query", "firehose-url", func(h string) string {
		return "ws://" + h + "/xrpc/com.atproto.sync.subscribeRepos?token=S3cretFirehoseToken"
	}, []string{"S3cretFirehoseToken"}, true},
	{"firehose user and password", "firehose-url", func(h string) string {
		return "ws://relay:S3cretFirehosePw@" + h + "/xrpc/com.atproto.sync.subscribeRepos"
	}, []string{"S3cretFirehosePw"}, true},
}

// checkNoSecret fails the test when out shows a secret of the forms.
func checkNoSecret(t *testing.T, what, out string, forms ...urlForm) {
	t.Helper()
	for _, f := range forms {
		for _, s := range f.secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows %q of %s:\n%s", what, s, f.name, out)
			}
		}
	}
}

// The admin token of the redaction tests: given in the environment, or in
// a file the environment names (adminTokenEnv).
const (
	adminSecret     = "S3cretAdminToken-0123456789"
	adminFileSecret = "S3cretAdminTokenInAFile-0123456789"
)

// adminTokenForm is the admin token as a form of secret to look for.
var adminTokenForm = urlForm{name: "admin token", secrets: []string{adminSecret, adminFileSecret}}

// adminTokenEnv sets the admin token: in $MOODSYNC_ADMIN_TOKEN, or, with
// inFile, in a file $MOODSYNC_ADMIN_TOKEN_FILE names (ending with a
// newline, as one written by hand).
func adminTokenEnv(t *testing.T, inFile bool) {
	t.Helper()
	if !inFile {
		t.Setenv("MOODSYNC_ADMIN_TOKEN", adminSecret)
		return
	}
	t.Setenv("MOODSYNC_ADMIN_TOKEN_FILE", writeFile(t, "admin-token", adminFileSecret+"\n"))
}

// writeFile writes a file of mode 0600 in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRedactURLHidesEveryCredential(t *testing.T) {
	for _, f := range urlForms {
		host := "db1.example.com:27017"
		got := redactURL(f.value(host))
		checkNoSecret(t, "redactURL("+f.name+")", got, f)
		if !strings.Contains(got, host) {
			t.Errorf("redactURL(%s) = %q: host lost", f.name, got)
		}
	}
	for raw, want := range map[string]string{
		"nats://moodsync:s3cret@a:4222,nats://b:4222":                      "nats://moodsync:xxxxx@a:4222,nats://b:4222",
		"s3cret@a:4222, b:4222":                                            "xxxxx@a:4222,b:4222",
		"mongodb://moodsync:s3cret@a:1,b:2,c:3/aesthetic?replicaSet=rs0":   "mongodb://moodsync:xxxxx@a:1,b:2,c:3/aesthetic?xxxxx",
		"mongodb://moodsync:p,s3cret@a/":                                   "mongodb://moodsync:xxxxx@a/",
		"mongodb://moodsync:p@s3cret@a/":                                   "mongodb://xxxxx@a/",
		"mongodb+srv://moodsync:s3cret@cluster0.example.com/?w=majority":   "mongodb+srv://moodsync:xxxxx@cluster0.example.com/?xxxxx",
		"https://admin:s3,cret@pds.example.com/":                           "https://admin:xxxxx@pds.example.com/",
		"wss://relay.example.com/xrpc/x?token=s3cret#s3cret":               "wss://relay.example.com/xrpc/x?xxxxx",
		"ws://tok@a,ws://s3cret@b":                                         "ws://xxxxx@b",
		"nats://u:s3cret%zz@a:4222,nats://u:s3cret%zz@b:4222?token=s3cret": "nats://xxxxx@b:4222?xxxxx",
	} {
		if got := redactURL(raw); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestHideSecretsFromWhatOthersFormat: a library's error quoting a URL
// setting (net/http keeps a token in the URL it quotes) loses its
// credentials on the way to stderr, whether the setting came from the
// environment or the command line, written with "=" or as two arguments.
func TestHideSecretsFromWhatOthersFormat(t *testing.T) {
	env := map[string]string{"MOODSYNC_PDS_URL": "http://S3cret,PdsToken@pds.example.com", "MOODSYNC_LOG_LEVEL": "S3cretNot",
		"MOODSYNC_ADMIN_TOKEN": adminSecret}
	tokenFile := writeFile(t, "admin-token", "\n "+adminFileSecret+"\n")
	args := []string{"run", "--nats-url=nats://u:S3cretA%2Cb@n1,nats://S3cretTok@n2", "-mongo-uri", "mongodb://u:S3cretM@db/?appName=S3cretApp",
		"--admin-token-file", tokenFile, "--plc-url"}
	var out bytes.Buffer
	w := hideSecrets(&out, args, func(k string) string { return env[k] })
	for _, line := range []string{
		`Get "http://S3cret,PdsToken@pds.example.com/xrpc/x": refused`,
		`nats: "nats://u:S3cretA,b@n1" and nats://S3cretTok@n2`,
		`mongo: auth S3cretM failed (appName S3cretApp)`,
		`admin: "Bearer ` + adminSecret + `" and "` + adminFileSecret + `" in ` + tokenFile,
	} {
		if _, err := w.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	got := out.String()
	for _, s := range []string{"S3cret,PdsToken", "PdsToken", "S3cretA", "S3cretTok", "S3cretM", "S3cretApp", adminSecret, adminFileSecret} {
		if strings.Contains(got, s) {
			t.Errorf("%q shown:\n%s", s, got)
		}
	}
	if !strings.Contains(got, "pds.example.com/xrpc/x") || !strings.Contains(got, tokenFile) {
		t.Errorf("more than the secrets hidden:\n%s", got)
	}
	// Only secret settings are looked for.
	w.Write([]byte("level S3cretNot\n"))
	if !strings.Contains(out.String(), "S3cretNot") {
		t.Error("a setting that is not secret was hidden")
	}
}

// environments zips the forms into values of every URL setting at once,
// so that each form is used.
func environments() []map[string]urlForm {
	by := map[string][]urlForm{}
	n := 0
	for _, f := range urlForms {
		by[f.setting] = append(by[f.setting], f)
		n = max(n, len(by[f.setting]))
	}
	envs := make([]map[string]urlForm, n)
	for i := range envs {
		envs[i] = map[string]urlForm{}
		for setting, fs := range by {
			envs[i][setting] = fs[i%len(fs)]
		}
	}
	return envs
}

func formsOf(env map[string]urlForm) []urlForm {
	var out []urlForm
	for _, f := range env {
		out = append(out, f)
	}
	return out
}

// deadHost accepts no connection: a server that is down.
const deadHost = "127.0.0.1:1"

// TestNoSecretInHelpFlagErrorsOrStartupErrors: with a credential in every
// URL setting, in every form the drivers accept, neither help, nor a flag
// error, nor the error of a start against servers that are down or refuse
// moodsync shows one.
func TestNoSecretInHelpFlagErrorsOrStartupErrors(t *testing.T) {
	natsHost := strings.TrimPrefix(devenv.NewNATS(t), "nats://")
	mongoHost := strings.TrimSuffix(strings.TrimPrefix(devenv.MongoURI(t), "mongodb://"), "/")
	for i, env := range environments() {
		forms := append(formsOf(env), adminTokenForm)
		setEnv := func(t *testing.T, hosts map[string]string) {
			clearEnv(t)
			adminTokenEnv(t, i%2 == 1)
			t.Setenv("MOODSYNC_DATA_DIR", t.TempDir())
			t.Setenv("MOODSYNC_EMBED_NATS_ADDR", freeAddr(t))
			t.Setenv("MOODSYNC_EMBED_MONGO_ADDR", freeAddr(t))
			for setting, f := range env {
				h := hosts[setting]
				if h == "" {
					h = deadHost
				}
				t.Setenv(settings.EnvName(setting), f.value(h))
			}
		}
		cli := func(t *testing.T, code int, args ...string) {
			t.Helper()
			var out bytes.Buffer
			if got := Main(context.Background(), args, &out, &out); got != code {
				t.Errorf("%v: exit %d, want %d:\n%s", args, got, code, out.String())
			}
			checkNoSecret(t, strings.Join(args, " "), out.String(), forms...)
		}
		t.Run("help and flag errors "+string(rune('A'+i)), func(t *testing.T) {
			setEnv(t, nil)
			cli(t, 0, "run", "-h")
			cli(t, 0, "audit", "-h")
			cli(t, 2, "audit", "--bogus")
			cli(t, 2, "run", "--bogus")
			cli(t, 2, "publish", "create", "--bogus")
			cli(t, 2, "dead", "list", "--bogus")
		})
		t.Run("NATS down "+string(rune('A'+i)), func(t *testing.T) {
			setEnv(t, nil)
			cli(t, 1, "run")
			cli(t, 1, "publish", "reconcile", "--user", "auth0|1")
		})
		t.Run("MongoDB refuses "+string(rune('A'+i)), func(t *testing.T) {
			f := env["mongo-uri"]
			if f.live {
				t.Skip("FerretDB takes this form: see the daemon's logs test")
			}
			setEnv(t, map[string]string{"nats-url": natsHost, "mongo-uri": mongoHost})
			cli(t, 1, "run")
		})
	}
	// MongoDB down: the driver gives up after its server selection timeout.
	t.Run("MongoDB down", func(t *testing.T) {
		env := environments()[0]
		clearEnv(t)
		for setting, f := range env {
			t.Setenv(settings.EnvName(setting), f.value(deadHost))
		}
		t.Setenv("MOODSYNC_MONGO_URI", "mongodb://"+deadHost+"/?appName=S3cretAppName")
		var out bytes.Buffer
		if code := Main(context.Background(), []string{"audit"}, &out, &out); code != 1 || !strings.Contains(out.String(), "server selection") {
			t.Errorf("exit %d:\n%s", code, out.String())
		}
		checkNoSecret(t, "audit", out.String(), append(formsOf(env), urlForm{name: "appName", secrets: []string{"S3cretAppName"}})...)
	})
}

// formNamed is the form of that name.
func formNamed(name string) urlForm {
	for _, f := range urlForms {
		if f.name == name {
			return f
		}
	}
	panic("no URL form " + name)
}

// TestNoSecretInTheDaemonsLogs runs the daemon with a credential in every
// URL setting — NATS and MongoDB reachable, the PDS, the PLC directory and
// the firehose down — and makes it fail at each: the firehose connection,
// a login to the PDS for an intent. Its JSON logs show no credential.
func TestNoSecretInTheDaemonsLogs(t *testing.T) {
	mongoHost := strings.TrimSuffix(strings.TrimPrefix(devenv.MongoURI(t), "mongodb://"), "/")
	for i, env := range environments() {
		// Forms the reachable servers take: the embedded FerretDB has no
		// authentication (the others are in the startup errors' test).
		if !env["mongo-uri"].live {
			env["mongo-uri"] = formNamed("MongoDB secret in options")
		}
		if !env["nats-url"].live {
			env["nats-url"] = formNamed("NATS user and password")
		}
		forms := append(formsOf(env), adminTokenForm)
		t.Run(string(rune('A'+i)), func(t *testing.T) {
			natsURL := devenv.NewNATS(t)
			natsHost := strings.TrimPrefix(natsURL, "nats://")
			_, js := devenv.ConnectJetStream(t, natsURL)
			if err := publisher.EnsureStreams(context.Background(), js); err != nil {
				t.Fatal(err)
			}
			clearEnv(t)
			store := devenv.NewStore(t)
			hosts := map[string]string{"nats-url": natsHost, "mongo-uri": mongoHost}
			for setting, f := range env {
				h := hosts[setting]
				if h == "" {
					h = deadHost
				}
				t.Setenv(settings.EnvName(setting), f.value(h))
			}
			adminTokenEnv(t, i%2 == 1)
			token := adminSecret
			if i%2 == 1 {
				token = adminFileSecret
			}
			httpAddr := freeAddr(t)
			for k, v := range map[string]string{
				"MOODSYNC_MONGO_DB": store.DB.Name(), "MOODSYNC_HTTP_ADDR": httpAddr,
				"MOODSYNC_DATA_DIR": t.TempDir(), "MOODSYNC_LOG_FORMAT": "json", "MOODSYNC_LOG_LEVEL": "debug",
			} {
				t.Setenv(k, v)
			}
			// A user whose intent makes the daemon log in to the PDS.
			user := "auth0|secrets" + string(rune('a'+i))
			_, err := store.DB.Collection(mongostore.UsersCollection).InsertOne(context.Background(), bson.D{
				{Key: "_id", Value: user},
				{Key: "atproto", Value: bson.D{{Key: "did", Value: "did:plc:secrets" + string(rune('a'+i))}, {Key: "password", Value: "S3cretUserPassword"}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			mood := devenv.InsertMood(t, store, user, "hush", time.Now())

			var logs syncWriter
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			go func() { done <- Main(ctx, []string{"run"}, &logs, &logs) }()
			if err := intent.Publish(context.Background(), js, intent.Intent{Op: intent.OpCreate, User: user, MongoID: mood}); err != nil {
				t.Fatal(err)
			}
			devenv.Eventually(t, 60*time.Second, "the daemon failed at the firehose and at the PDS", func() bool {
				l := logs.String()
				return strings.Contains(l, "firehose connection ended") && (strings.Contains(l, "intent failed; will retry") || strings.Contains(l, "user in trouble: intents parked"))
			})
			// The admin route: refused with a wrong token (which no filter
			// hides: it must not be logged at all), and with the right one
			// a status that fails at the PDS.
			for _, auth := range []string{"Bearer " + wrongAdminToken, "Bearer " + token} {
				req, _ := http.NewRequest("GET", "http://"+httpAddr+"/v1/users/"+url.PathEscape(user), nil)
				req.Header.Set("Authorization", auth)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if want := http.StatusUnauthorized; (auth == "Bearer "+wrongAdminToken) != (resp.StatusCode == want) {
					t.Errorf("%s…: %d", auth[:10], resp.StatusCode)
				}
			}
			devenv.Eventually(t, 10*time.Second, "the refusal logged", func() bool {
				return strings.Contains(logs.String(), "admin request refused")
			})
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("run exited %d", code)
			}
			checkNoSecret(t, "the daemon's logs", logs.String(), append(forms, urlForm{name: "users row", secrets: []string{"S3cretUserPassword"}},
				urlForm{name: "a wrong admin token", secrets: []string{wrongAdminToken}})...)
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				if !strings.HasPrefix(line, "{") {
					t.Errorf("not a JSON log line: %s", line)
				}
			}
		})
	}
}

// TestOneShotCommandNamesNoCredentialOfABadURL: nats.go's error for a
// URL that does not parse quotes the URL; moodsync's does not.
func TestOneShotCommandNamesNoCredentialOfABadURL(t *testing.T) {
	clearEnv(t)
	t.Setenv("MOODSYNC_NATS_URL", "nats://s3cret%zz@nats.example.com:4222")
	var out bytes.Buffer
	code := Main(context.Background(), []string{"publish", "reconcile", "--user", "auth0|1"}, &out, &out)
	if code != 1 || strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "invalid URL escape") {
		t.Errorf("exit %d, output:\n%s", code, out.String())
	}
}

// wrongAdminToken is a guess at the admin token.
const wrongAdminToken = "S3cretWrongGuess-0123456789"

// TestAdminTokenErrorsShowNothingOfIt: a token file that cannot be used
// stops `run` at start with an error naming the file, never what it
// holds; a token given twice is refused.
func TestAdminTokenErrorsShowNothingOfIt(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token, file, want string
	}{
		{"not a token", "", writeFile(t, "bad", "S3cret bad admin token\n"), "admin token file %s: not a valid token"},
		{"too short", "", writeFile(t, "short", "S3cret\n"), "admin token file %s: not a valid token"},
		{"missing", "", filepath.Join(t.TempDir(), "missing"), "admin token file: stat %s: no such file"},
		{"a pipe", "", fifo, "admin token file: %s is not a regular file"},
		{"both", adminSecret, writeFile(t, "token", adminFileSecret), "--admin-token ($MOODSYNC_ADMIN_TOKEN) and --admin-token-file ($MOODSYNC_ADMIN_TOKEN_FILE) are both set"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("MOODSYNC_PDS_URL", "http://"+deadHost)
			t.Setenv("MOODSYNC_ADMIN_TOKEN", c.token)
			t.Setenv("MOODSYNC_ADMIN_TOKEN_FILE", c.file)
			var out bytes.Buffer
			code := Main(context.Background(), []string{"run"}, &out, &out)
			want := c.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, c.file)
			}
			if code != 1 || !strings.HasPrefix(out.String(), "moodsync run: "+want) || strings.Count(out.String(), "\n") != 1 {
				t.Errorf("exit %d, output:\n%s", code, out.String())
			}
			for _, s := range []string{"S3cret", "bad admin token", adminSecret, adminFileSecret} {
				if strings.Contains(out.String(), s) {
					t.Errorf("%q shown:\n%s", s, out.String())
				}
			}
		})
	}

	// Read: without the white space around it; an empty file is no token.
	for content, want := range map[string]string{"\n\t" + adminFileSecret + " \r\n": adminFileSecret, "": "", "\n": ""} {
		cfg := Config{AdminTokenFile: writeFile(t, "token", content)}
		if got, err := cfg.adminToken(); got != want || err != nil {
			t.Errorf("token file %q: %q, %v; want %q", content, got, err, want)
		}
	}
	if got, err := (&Config{AdminToken: adminSecret}).adminToken(); got != adminSecret || err != nil {
		t.Errorf("token: %q, %v", got, err)
	}
}
