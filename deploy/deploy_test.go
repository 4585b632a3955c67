// Package deploy_test checks the deployment files in deploy/ against the
// code: every setting they name is one `moodsync run` has (the settings
// table), values parse with the table's own parsers,
// the production image gets what it needs, the admin token comes from
// secrets only and the Service carries metrics alone, images are pinned,
// and the NATS definitions are exactly what moodsync creates. `make check-deploy` runs
// these tests.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/whistlegraph/moodsync/consumer/leader"
	"github.com/whistlegraph/moodsync/deploy/dev/devenv"
	"github.com/whistlegraph/moodsync/deploy/settings"
	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/intent"
)

// runSettings are the settings of `moodsync run`, by variable: the one
// table every command binds from (cmd/moodsync checks that run binds all
// of it), with the parser that checks each value.
func runSettings(t *testing.T) map[string]*settings.Setting {
	t.Helper()
	byEnv := map[string]*settings.Setting{}
	for i := range settings.Table {
		byEnv[settings.Table[i].Env] = &settings.Table[i]
	}
	return byEnv
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs parses every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(read(t, path)))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// dig walks a parsed YAML tree: keys for maps, ints for lists.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, str(x))
	}
	return out
}

// envMap turns a YAML map of variables into strings.
func envMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := map[string]string{}
	for k, x := range m {
		out[k] = str(x)
	}
	return out
}

// envFile reads KEY=VALUE lines.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(string(read(t, path)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: not KEY=VALUE: %q", path, line)
			continue
		}
		out[k] = v
	}
	return out
}

// dockerfile is the parsed deploy/Dockerfile: instructions with their
// continuation lines joined.
func dockerfile(t *testing.T) [][2]string {
	t.Helper()
	var out [][2]string
	var cur string
	for _, line := range strings.Split(string(read(t, "Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		op, rest, _ := strings.Cut(cur, " ")
		out = append(out, [2]string{strings.ToUpper(op), strings.TrimSpace(rest)})
		cur = ""
	}
	return out
}

func dockerEnv(t *testing.T) map[string]string {
	out := map[string]string{}
	for _, in := range dockerfile(t) {
		if in[0] != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in[1]) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				out[k] = v
			}
		}
	}
	return out
}

func compose(t *testing.T) map[string]any {
	docs := yamlDocs(t, "docker-compose.yml")
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml: %d documents", len(docs))
	}
	return docs[0]
}

// moodsyncServices are the compose services built from deploy/Dockerfile.
func moodsyncServices(t *testing.T) map[string]map[string]any {
	out := map[string]map[string]any{}
	services, _ := compose(t)["services"].(map[string]any)
	for name, s := range services {
		svc, _ := s.(map[string]any)
		if dig(svc, "build", "dockerfile") == "deploy/Dockerfile" {
			out[name] = svc
		}
	}
	return out
}

// k8s returns every Kubernetes object in deploy/k8s by kind/name.
func k8s(t *testing.T) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, f := range kustomizeResources(t) {
		for _, doc := range yamlDocs(t, filepath.Join("k8s", f)) {
			kind, name := str(doc["kind"]), str(dig(doc, "metadata", "name"))
			if str(doc["apiVersion"]) == "" || kind == "" || name == "" {
				t.Errorf("k8s/%s: object without apiVersion, kind or metadata.name", f)
			}
			out[kind+"/"+name] = doc
		}
	}
	return out
}

func kustomizeResources(t *testing.T) []string {
	docs := yamlDocs(t, "k8s/kustomization.yaml")
	return strs(docs[0]["resources"])
}

// checkEnv checks variables named in one place: each is a setting of
// `moodsync run`, and its value parses (the daemon would refuse to start
// otherwise).
func checkEnv(t *testing.T, where string, env map[string]string, known map[string]*settings.Setting) {
	t.Helper()
	if len(env) == 0 {
		t.Errorf("%s: no settings found", where)
	}
	for k, v := range env {
		s, ok := known[k]
		if !ok {
			t.Errorf("%s: %s is not a setting of moodsync run", where, k)
			continue
		}
		if strings.Contains(v, "${") {
			continue // compose interpolation
		}
		if err := s.Check(v); err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
}

// checkArgs checks a command line given to the image or binary: `run`,
// then only flags `moodsync run` has.
func checkArgs(t *testing.T, where string, args []string, known map[string]*settings.Setting) {
	t.Helper()
	if len(args) == 0 || args[0] != "run" {
		t.Errorf("%s: args %q do not start with the run command", where, args)
		return
	}
	byFlag := map[string]bool{}
	for _, s := range known {
		byFlag[s.Name] = true
	}
	for _, a := range args[1:] {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !byFlag[name] {
			t.Errorf("%s: flag %s is not a flag of moodsync run", where, a)
		}
	}
}

func TestDeploySettingsAreRealAndParse(t *testing.T) {
	settings := runSettings(t)

	checkEnv(t, "Dockerfile", dockerEnv(t), settings)
	for name, svc := range moodsyncServices(t) {
		checkEnv(t, "docker-compose.yml "+name, envMap(svc["environment"]), settings)
		checkArgs(t, "docker-compose.yml "+name, strs(svc["command"]), settings)
	}
	objs := k8s(t)
	checkEnv(t, "k8s ConfigMap", envMap(dig(objs["ConfigMap/moodsync"], "data")), settings)
	checkEnv(t, "k8s Secret", envMap(dig(objs["Secret/moodsync"], "stringData")), settings)
	checkEnv(t, "systemd env", envFile(t, "systemd/moodsync.env.example"), settings)

	containers, _ := dig(objs["Deployment/moodsync"], "spec", "template", "spec", "containers").([]any)
	for _, c := range containers {
		checkArgs(t, "k8s Deployment", strs(dig(c, "args")), settings)
		for _, e := range asList(dig(c, "env")) {
			name := str(dig(e, "name"))
			if strings.HasPrefix(name, "MOODSYNC_") {
				checkEnv(t, "k8s Deployment env", map[string]string{name: str(dig(e, "value"))}, settings)
			}
		}
	}
	var cmd []string
	for _, in := range dockerfile(t) {
		if in[0] == "CMD" {
			if err := json.Unmarshal([]byte(in[1]), &cmd); err != nil {
				t.Errorf("Dockerfile CMD %s: not exec form: %v", in[1], err)
			}
		}
	}
	checkArgs(t, "Dockerfile CMD", cmd, settings)
	checkArgs(t, "systemd ExecStart", strings.Fields(unitValue(t, "ExecStart"))[1:], settings)

	// Every MOODSYNC_ name anywhere in deploy/ (comments, docs) is a
	// setting, a stream or the lease bucket.
	names := map[string]bool{intent.Stream: true, intent.DeadStream: true, leader.DefaultBucket: true}
	word := regexp.MustCompile(`MOODSYNC_[A-Z0-9_]+`)
	for _, f := range deployFiles(t) {
		for _, w := range word.FindAllString(string(read(t, f)), -1) {
			if _, ok := settings[w]; !ok && !names[w] && !strings.HasPrefix(w, "MOODSYNC_DEV_") && !strings.HasPrefix(w, "MOODSYNC_TEST_") {
				t.Errorf("%s names %s, which moodsync run does not read", f, w)
			}
		}
	}
}

// deployFiles are the operator-facing files of deploy/ (not the dev
// harness, not the embedded servers, not Go code).
func deployFiles(t *testing.T) []string {
	var out []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (p == "dev" || p == "embedded") {
			return filepath.SkipDir
		}
		if !d.IsDir() && !strings.HasSuffix(p, ".go") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unitValue is a key of the systemd unit.
func unitValue(t *testing.T, key string) string {
	t.Helper()
	for _, line := range strings.Split(string(read(t, "systemd/moodsync.service")), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("systemd unit has no %s", key)
	return ""
}

func TestDeployProductionGetsItsServers(t *testing.T) {
	// The image and the production binary have no embedded servers: every
	// deployment must point at MongoDB and NATS, and at the PDS.
	required := []string{"MOODSYNC_PDS_URL", "MOODSYNC_MONGO_URI", "MOODSYNC_NATS_URL"}
	objs := k8s(t)
	kube := envMap(dig(objs["ConfigMap/moodsync"], "data"))
	secret := envMap(dig(objs["Secret/moodsync"], "stringData"))
	for k, v := range secret {
		kube[k] = v
	}
	forms := map[string]map[string]string{
		"k8s ConfigMap+Secret": kube,
		"systemd env":          envFile(t, "systemd/moodsync.env.example"),
	}
	for name, svc := range moodsyncServices(t) {
		forms["compose "+name] = envMap(svc["environment"])
	}
	for where, env := range forms {
		for _, k := range required {
			if env[k] == "" {
				t.Errorf("%s: %s not set", where, k)
			}
		}
	}
	// Connection strings carry credentials: they go in the Secret.
	for _, k := range []string{"MOODSYNC_MONGO_URI", "MOODSYNC_NATS_URL"} {
		if _, ok := envMap(dig(objs["ConfigMap/moodsync"], "data"))[k]; ok {
			t.Errorf("k8s: %s is in the ConfigMap; it belongs in the Secret", k)
		}
		if secret[k] == "" {
			t.Errorf("k8s: %s missing from the Secret", k)
		}
	}
}

// httpPort is the port of MOODSYNC_HTTP_ADDR, which must not be loopback
// inside a container (probes and Prometheus come from outside).
func httpPort(t *testing.T, where, addr string) int {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: MOODSYNC_HTTP_ADDR %q: %v", where, addr, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		t.Errorf("%s: MOODSYNC_HTTP_ADDR %s listens on loopback: probes and scrapes cannot reach it", where, addr)
	}
	n, _ := strconv.Atoi(port)
	return n
}

func TestDeployKubernetes(t *testing.T) {
	objs := k8s(t)
	for _, want := range []string{"Deployment/moodsync", "ConfigMap/moodsync", "Secret/moodsync", "Service/moodsync-metrics", "PodDisruptionBudget/moodsync"} {
		if objs[want] == nil {
			t.Fatalf("k8s: no %s", want)
		}
	}
	dep := objs["Deployment/moodsync"]
	if r := dig(dep, "spec", "replicas"); r != 2 {
		t.Errorf("Deployment replicas = %v, want 2", r)
	}
	pod := dig(dep, "spec", "template", "spec")
	if dig(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("pod does not require a non-root user")
	}
	labels := envMap(dig(dep, "spec", "template", "metadata", "labels"))
	for k, v := range envMap(dig(dep, "spec", "selector", "matchLabels")) {
		if labels[k] != v {
			t.Errorf("Deployment selector %s=%s does not match the pod labels", k, v)
		}
	}
	port := httpPort(t, "k8s ConfigMap", envMap(dig(objs["ConfigMap/moodsync"], "data"))["MOODSYNC_HTTP_ADDR"])
	c := dig(pod, "containers", 0)
	if dig(c, "image") != "moodsync" {
		t.Errorf("container image %v: want the placeholder moodsync, set by kustomization images", dig(c, "image"))
	}
	var portName string
	for _, p := range asList(dig(c, "ports")) {
		if dig(p, "containerPort") == port {
			portName = str(dig(p, "name"))
		}
	}
	if portName == "" {
		t.Fatalf("no container port %d (MOODSYNC_HTTP_ADDR)", port)
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
		if got := dig(c, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path = %v, want %s", probe, got, path)
		}
		if got := str(dig(c, probe, "httpGet", "port")); got != portName && got != strconv.Itoa(port) {
			t.Errorf("%s port = %v, want %s", probe, got, portName)
		}
	}
	if dig(c, "securityContext", "allowPrivilegeEscalation") != false {
		t.Error("container allows privilege escalation")
	}
	for _, ref := range asList(dig(c, "envFrom")) {
		if n := str(dig(ref, "configMapRef", "name")); n != "" && objs["ConfigMap/"+n] == nil {
			t.Errorf("envFrom names ConfigMap %s, not in the manifests", n)
		}
		if n := str(dig(ref, "secretRef", "name")); n != "" && objs["Secret/"+n] == nil {
			t.Errorf("envFrom names Secret %s, not in the manifests", n)
		}
	}
	svc := objs["Service/moodsync-metrics"]
	for k, v := range envMap(dig(svc, "spec", "selector")) {
		if labels[k] != v {
			t.Errorf("Service selector %s=%s matches no pod", k, v)
		}
	}
	if got := str(dig(svc, "spec", "ports", 0, "targetPort")); got != portName {
		t.Errorf("Service targetPort = %s, want %s", got, portName)
	}
	for k, v := range envMap(dig(objs["PodDisruptionBudget/moodsync"], "spec", "selector", "matchLabels")) {
		if labels[k] != v {
			t.Errorf("PodDisruptionBudget selector %s=%s matches no pod", k, v)
		}
	}
	// kustomization lists every manifest in k8s/.
	files, _ := filepath.Glob("k8s/*.yaml")
	listed := kustomizeResources(t)
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(listed, b) {
			t.Errorf("k8s/%s is not in kustomization.yaml", b)
		}
	}
}

func TestDeployCompose(t *testing.T) {
	svcs := moodsyncServices(t)
	if len(svcs) != 2 {
		t.Fatalf("%d moodsync services in docker-compose.yml, want 2 replicas", len(svcs))
	}
	services, _ := compose(t)["services"].(map[string]any)
	hostnames, hostPorts := map[string]bool{}, map[string]bool{}
	for name, svc := range svcs {
		env := envMap(svc["environment"])
		port := httpPort(t, "compose "+name, env["MOODSYNC_HTTP_ADDR"])
		// Both replicas on the compose file's own MongoDB and NATS.
		for k, want := range map[string]string{"MOODSYNC_MONGO_URI": "mongo", "MOODSYNC_NATS_URL": "nats"} {
			if !strings.Contains(env[k], "//"+want+":") || services[want] == nil {
				t.Errorf("compose %s: %s=%s, want the %s service", name, k, env[k], want)
			}
			if dig(svc, "depends_on", want, "condition") != "service_healthy" {
				t.Errorf("compose %s: does not wait for %s to be healthy", name, want)
			}
		}
		h := str(svc["hostname"])
		if h == "" || hostnames[h] {
			t.Errorf("compose %s: hostname %q missing or shared (it names the replica in the lease)", name, h)
		}
		hostnames[h] = true
		for _, p := range strs(svc["ports"]) {
			parts := strings.Split(p, ":")
			if parts[len(parts)-1] != strconv.Itoa(port) {
				t.Errorf("compose %s: port %s does not publish MOODSYNC_HTTP_ADDR's %d", name, p, port)
			}
			if hostPorts[parts[len(parts)-2]] {
				t.Errorf("compose %s: host port %s used twice", name, p)
			}
			hostPorts[parts[len(parts)-2]] = true
		}
	}
	// NATS runs with JetStream.
	if cmd := strs(dig(services["nats"], "command")); !slices.Contains(cmd, "--jetstream") && !slices.Contains(cmd, "-js") {
		t.Errorf("compose nats: command %q does not enable JetStream", cmd)
	}
}

func TestDeployDockerfile(t *testing.T) {
	ins := dockerfile(t)
	var froms, runs []string
	var user, entry string
	for _, in := range ins {
		switch in[0] {
		case "FROM":
			froms = append(froms, in[1])
		case "RUN":
			runs = append(runs, in[1])
		case "USER":
			user = in[1]
		case "ENTRYPOINT":
			entry = in[1]
		}
	}
	if len(froms) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a multi-stage build", len(froms))
	}
	build := strings.Join(runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-tags production", "./cmd/moodsync"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile build lacks %s", want)
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	if !strings.Contains(entry, "moodsync") {
		t.Errorf("ENTRYPOINT %s does not run moodsync", entry)
	}
	// The build stage's Go is the module's.
	gomod := string(read(t, "../go.mod"))
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if !strings.HasPrefix(strings.Fields(froms[0])[0], "golang:"+goLine[1]+".") {
		t.Errorf("build stage %s is not Go %s (go.mod)", froms[0], goLine[1])
	}
}

func TestDeploySystemdUnit(t *testing.T) {
	exec := strings.Fields(unitValue(t, "ExecStart"))
	if filepath.Base(exec[0]) != "moodsync" {
		t.Errorf("ExecStart runs %s", exec[0])
	}
	if unitValue(t, "DynamicUser") != "yes" && unitValue(t, "User") == "" {
		t.Error("unit runs as root")
	}
	if unitValue(t, "EnvironmentFile") == "" || unitValue(t, "Restart") == "" || unitValue(t, "KillSignal") != "SIGTERM" {
		t.Error("unit lacks EnvironmentFile, Restart or KillSignal=SIGTERM")
	}
}

// images lists the pinned third-party images.
func images(t *testing.T) []string {
	var out []string
	for _, line := range strings.Split(string(read(t, "images.txt")), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

func TestDeployImagesArePinned(t *testing.T) {
	pinned := images(t)
	used := map[string]string{} // image → where
	for _, in := range dockerfile(t) {
		if in[0] == "FROM" {
			used[strings.Fields(in[1])[0]] = "Dockerfile"
		}
	}
	services, _ := compose(t)["services"].(map[string]any)
	for name, s := range services {
		if dig(s, "build") == nil {
			used[str(dig(s, "image"))] = "compose " + name
		}
	}
	for name, obj := range k8s(t) {
		for _, c := range append(asList(dig(obj, "spec", "template", "spec", "containers")), asList(dig(obj, "spec", "template", "spec", "initContainers"))...) {
			img := str(dig(c, "image"))
			if img != "moodsync" { // ours, built from deploy/Dockerfile, named by kustomization
				used[img] = "k8s " + name
			}
		}
	}
	for img, where := range used {
		if !slices.Contains(pinned, img) {
			t.Errorf("%s uses %s, which is not pinned in images.txt", where, img)
		}
	}
	tag := regexp.MustCompile(`^[a-z0-9./-]+:([A-Za-z0-9._-]+)$`)
	for _, img := range pinned {
		m := tag.FindStringSubmatch(img)
		switch {
		case m == nil:
			t.Errorf("images.txt: %s has no tag", img)
		case m[1] == "latest":
			t.Errorf("images.txt: %s is not pinned", img)
		}
		if _, ok := used[img]; !ok {
			t.Errorf("images.txt: %s is used nowhere", img)
		}
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestDeployAlertRulesHaveRunbooks(t *testing.T) {
	docs := yamlDocs(t, "prometheus/alerts.yml")
	readme := string(read(t, "../README.md"))
	anchors := map[string]bool{}
	for _, line := range strings.Split(readme, "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			anchors[strings.ToLower(strings.Trim(strings.TrimLeft(h, "#"), " `"))] = true
		}
	}
	n := 0
	for _, g := range asList(docs[0]["groups"]) {
		for _, r := range asList(dig(g, "rules")) {
			n++
			name := str(dig(r, "alert"))
			if name == "" || str(dig(r, "expr")) == "" || str(dig(r, "labels", "severity")) == "" || str(dig(r, "annotations", "summary")) == "" {
				t.Errorf("rule %q lacks alert, expr, severity or summary", name)
			}
			rb := str(dig(r, "annotations", "runbook"))
			anchor, ok := strings.CutPrefix(rb, "README.md#")
			if !ok || !anchors[anchor] {
				t.Errorf("alert %s: runbook %q is no heading of README.md", name, rb)
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert rules")
	}
}

// TestNATSDefinitionsMatchPublisher checks the hand-managed definitions
// against a real server: what moodsync creates (the publisher's own Run,
// with its defaults) and what the files create must be the same, and the
// files must say it all (they equal the server's full config).
func TestNATSDefinitionsMatchPublisher(t *testing.T) {
	ctx := context.Background()
	connect := func() jetstream.JetStream {
		_, js := devenv.ConnectJetStream(t, devenv.NewNATS(t))
		return js
	}

	// moodsync's way: the publisher creates streams and consumer.
	ours := connect()
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- publisher.New(ours, nil, publisher.Config{}, nil).Run(pctx) }()
	devenv.Eventually(t, 30*time.Second, "publisher created its consumer", func() bool {
		_, err := ours.Consumer(ctx, intent.Stream, publisher.Durable)
		return err == nil
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// The operator's way: the files.
	theirs := connect()
	for file, name := range map[string]string{"nats/intents-stream.json": intent.Stream, "nats/dead-stream.json": intent.DeadStream} {
		var fromFile jetstream.StreamConfig
		if err := json.Unmarshal(read(t, file), &fromFile); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if fromFile.Name != name {
			t.Fatalf("%s names stream %s, want %s", file, fromFile.Name, name)
		}
		s, err := ours.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		want := s.CachedInfo().Config
		want.Metadata = nil // the server's own version keys
		if !reflect.DeepEqual(fromFile, want) {
			t.Errorf("%s differs from the stream moodsync creates:\n file: %+v\n ours: %+v", file, fromFile, want)
		}
		created, err := theirs.CreateStream(ctx, fromFile)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		got := created.CachedInfo().Config
		got.Metadata = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s creates a different stream:\n file: %+v\n ours: %+v", file, got, want)
		}
	}

	var fromFile jetstream.ConsumerConfig
	if err := json.Unmarshal(read(t, "nats/publisher-consumer.json"), &fromFile); err != nil {
		t.Fatal(err)
	}
	c, err := ours.Consumer(ctx, intent.Stream, publisher.Durable)
	if err != nil {
		t.Fatal(err)
	}
	want := c.CachedInfo().Config
	want.Metadata = nil
	if !reflect.DeepEqual(fromFile, want) {
		t.Errorf("publisher-consumer.json differs from the consumer moodsync creates:\n file: %+v\n ours: %+v", fromFile, want)
	}
	created, err := theirs.CreateConsumer(ctx, intent.Stream, fromFile)
	if err != nil {
		t.Fatal(err)
	}
	got := created.CachedInfo().Config
	got.Metadata = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("publisher-consumer.json creates a different consumer:\n file: %+v\n ours: %+v", got, want)
	}

	// The lease bucket named in nats/README.md is the one moodsync makes.
	readme := string(read(t, "nats/README.md"))
	cfg := leader.BucketConfig(leader.DefaultBucket, leader.DefaultTTL)
	wantCmd := "nats kv add " + cfg.Bucket + " --history " + strconv.Itoa(int(cfg.History)) + " --ttl " + cfg.TTL.String() + " --storage file"
	if !strings.Contains(readme, wantCmd) {
		t.Errorf("nats/README.md does not say %q", wantCmd)
	}
}

// The admin token's settings.
const (
	adminToken     = "MOODSYNC_ADMIN_TOKEN"
	adminTokenFile = "MOODSYNC_ADMIN_TOKEN_FILE"
)

// loopback reports whether a listen address is on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (host == "localhost" || (ip != nil && ip.IsLoopback()))
}

// noTokenFlag fails when a command line gives the admin token (anyone on
// the host sees a process's arguments).
func noTokenFlag(t *testing.T, where string, args []string) {
	t.Helper()
	for _, a := range args {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && strings.HasPrefix(name, "admin-token") {
			t.Errorf("%s: %s on the command line: the admin token comes from a secret", where, a)
		}
	}
}

// TestDeployAdminRouteNeedsASecretToken: the admin route GET
// /v1/users/{sub} is served on the port of MOODSYNC_HTTP_ADDR, which every
// deployment opens beyond loopback for probes and Prometheus. So each of
// them takes the admin token from a secret — the Kubernetes Secret (as a
// variable or a mounted file), the mode-0600 systemd env file, the
// operator's shell for compose — and never from a value written in a
// manifest, the unit, the image or a command line; an empty secret leaves
// the route off. The Kubernetes Service carries the metrics port alone,
// announced for scraping /metrics alone, and nothing else exposes a port.
func TestDeployAdminRouteNeedsASecretToken(t *testing.T) {
	// Kubernetes.
	objs := k8s(t)
	cm := envMap(dig(objs["ConfigMap/moodsync"], "data"))
	if _, ok := cm[adminToken]; ok {
		t.Errorf("k8s: %s is in the ConfigMap; it belongs in the Secret", adminToken)
	}
	pod := dig(objs["Deployment/moodsync"], "spec", "template", "spec")
	secretVolumes := map[string]bool{}
	for _, v := range asList(dig(pod, "volumes")) {
		if n := str(dig(v, "secret", "secretName")); n != "" && objs["Secret/"+n] != nil {
			secretVolumes[str(dig(v, "name"))] = true
		}
	}
	for i, c := range asList(dig(pod, "containers")) {
		where := "k8s Deployment container " + str(dig(c, "name"))
		noTokenFlag(t, where, strs(dig(c, "args")))
		noTokenFlag(t, where, strs(dig(c, "command")))
		env := map[string]string{}
		for k, v := range cm {
			env[k] = v
		}
		fromSecret := false
		for _, ref := range asList(dig(c, "envFrom")) {
			if n := str(dig(ref, "secretRef", "name")); n != "" {
				if _, ok := envMap(dig(objs["Secret/"+n], "stringData"))[adminToken]; ok {
					fromSecret = true
				}
			}
		}
		for _, e := range asList(dig(c, "env")) {
			name := str(dig(e, "name"))
			switch {
			case name == adminToken && dig(e, "value") != nil:
				t.Errorf("%s: %s has a value written in the manifest; take it from the Secret (valueFrom.secretKeyRef)", where, name)
			case name == adminToken:
				n, key := str(dig(e, "valueFrom", "secretKeyRef", "name")), str(dig(e, "valueFrom", "secretKeyRef", "key"))
				if _, ok := envMap(dig(objs["Secret/"+n], "stringData"))[key]; !ok || n == "" {
					t.Errorf("%s: %s is not taken from a key of a Secret in the manifests", where, name)
				}
				fromSecret = true
			case name == adminTokenFile:
				env[name] = str(dig(e, "value"))
			}
		}
		if f := env[adminTokenFile]; f != "" {
			mounted := false
			for _, m := range asList(dig(c, "volumeMounts")) {
				dir := strings.TrimSuffix(str(dig(m, "mountPath")), "/") + "/"
				if secretVolumes[str(dig(m, "name"))] && strings.HasPrefix(f, dir) {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("%s: %s=%s is not in a volume of a Secret", where, adminTokenFile, f)
			}
			fromSecret = true
		}
		if !loopback(cm["MOODSYNC_HTTP_ADDR"]) && !fromSecret {
			t.Errorf("%s (container %d): the HTTP port listens on %s and the admin token comes from no Secret", where, i, cm["MOODSYNC_HTTP_ADDR"])
		}
	}
	for name, obj := range objs {
		kind := str(obj["kind"])
		switch {
		case kind == "Ingress" || kind == "Gateway" || strings.HasSuffix(kind, "Route"):
			t.Errorf("k8s: %s exposes moodsync's HTTP port beyond the cluster", name)
		case kind == "Service" && name != "Service/moodsync-metrics":
			t.Errorf("k8s: %s: the only Service is moodsync-metrics", name)
		}
	}
	svc := objs["Service/moodsync-metrics"]
	if typ := str(dig(svc, "spec", "type")); typ != "" && typ != "ClusterIP" {
		t.Errorf("Service moodsync-metrics is of type %s: want ClusterIP (in the cluster only)", typ)
	}
	if ports := asList(dig(svc, "spec", "ports")); len(ports) != 1 || str(dig(ports[0], "targetPort")) != "metrics" {
		t.Errorf("Service moodsync-metrics: ports %v, want the metrics port alone", ports)
	}
	port := strconv.Itoa(httpPort(t, "k8s ConfigMap", cm["MOODSYNC_HTTP_ADDR"]))
	for k, v := range envMap(dig(svc, "metadata", "annotations")) {
		want, ok := map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": port, "prometheus.io/path": "/metrics"}[k]
		if !ok || v != want {
			t.Errorf("Service moodsync-metrics: annotation %s: %s; only prometheus.io/scrape, /port and /path (/metrics) are for it", k, v)
		}
	}

	// Compose: from the operator's shell (or deploy/.env), never written.
	interpolated := regexp.MustCompile(`^\$\{` + adminToken + `(:?-)?\}$`)
	for name, svc := range moodsyncServices(t) {
		where := "compose " + name
		env := envMap(svc["environment"])
		noTokenFlag(t, where, strs(svc["command"]))
		tok, hasTok := env[adminToken]
		file := env[adminTokenFile]
		switch {
		case hasTok && !interpolated.MatchString(tok):
			t.Errorf("%s: %s is written in the file; want ${%s:-} from the operator's environment", where, adminToken, adminToken)
		case file != "" && (!strings.HasPrefix(file, "/run/secrets/") || len(asList(svc["secrets"])) == 0):
			t.Errorf("%s: %s=%s is not a compose secret", where, adminTokenFile, file)
		case !hasTok && file == "" && !loopback(env["MOODSYNC_HTTP_ADDR"]):
			t.Errorf("%s: the HTTP port listens on %s and no admin token is given", where, env["MOODSYNC_HTTP_ADDR"])
		}
	}

	// systemd: in the mode-0600 env file, empty in the example.
	env := envFile(t, "systemd/moodsync.env.example")
	tok, hasTok := env[adminToken]
	switch {
	case hasTok && tok != "":
		t.Errorf("systemd env: %s has an example value, which would be copied: leave it empty", adminToken)
	case !hasTok && env[adminTokenFile] == "" && !loopback(env["MOODSYNC_HTTP_ADDR"]):
		t.Errorf("systemd env: the HTTP port listens on %s and no admin token is named", env["MOODSYNC_HTTP_ADDR"])
	}
	for _, line := range strings.Split(string(read(t, "systemd/moodsync.service")), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "Environment" && strings.Contains(v, adminToken+"=") {
			t.Errorf("systemd unit: %s in an Environment= line, which anyone on the host may read: it belongs in the env file", adminToken)
		}
	}
	noTokenFlag(t, "systemd ExecStart", strings.Fields(unitValue(t, "ExecStart")))

	// The image: nothing of a token.
	if _, ok := dockerEnv(t)[adminToken]; ok {
		t.Errorf("Dockerfile: ENV %s: an image carries no token", adminToken)
	}
	for _, in := range dockerfile(t) {
		if in[0] == "CMD" || in[0] == "ENTRYPOINT" {
			noTokenFlag(t, "Dockerfile "+in[0], strings.Fields(strings.NewReplacer("[", " ", "]", " ", ",", " ", `"`, " ").Replace(in[1])))
		}
	}
}
