// Package settingstest is the simulated fleet of the settings benchmarks
// (internal/settings, bench/settings): fact documents shaped like a peel's
// and a realistic settings tree.
package settingstest

import (
	"encoding/json"
	"fmt"

	"github.com/zester-io/zester/internal/settings"
)

// Facts is one simulated peel's fact document, shaped like the peel's own (about
// 2 KiB of JSON).
func Facts(i int) []byte {
	oses := []string{"Debian", "Ubuntu", "RedHat", "Rocky"}
	roles := []string{"web", "db", "cache", "lb", "worker"}
	doc := map[string]any{
		"id": fmt.Sprintf("peel%05d", i), "os": oses[i%4], "os_family": map[bool]string{true: "Debian", false: "RedHat"}[i%4 < 2],
		"osrelease": "12.5", "oscodename": "bookworm", "kernel": "Linux", "kernelrelease": "6.1.0-18-amd64",
		"cpuarch": "x86_64", "num_cpus": 2 + i%16, "mem_total": 8192 + i%4*4096, "virtual": "kvm",
		"role": roles[i%5], "datacenter": fmt.Sprintf("dc%d", i%3), "fqdn": fmt.Sprintf("peel%05d.example.com", i),
		"domain": "example.com", "host": fmt.Sprintf("peel%05d", i), "machine_id": fmt.Sprintf("%032x", i),
		"network": map[string]any{
			"addresses":  []any{fmt.Sprintf("10.%d.%d.%d/16", i/65536, i/256%256, i%256), "127.0.0.1/8"},
			"interfaces": map[string]any{"eth0": map[string]any{"hwaddr": "52:54:00:12:34:56", "ipv4": []any{fmt.Sprintf("10.0.%d.%d", i/256%256, i%256)}, "up": true}, "lo": map[string]any{"ipv4": []any{"127.0.0.1"}, "up": true}},
			"dns":        map[string]any{"nameservers": []any{"10.0.0.2", "10.0.0.3"}, "search": []any{"example.com"}},
		},
		"disks":    []any{"vda", "vdb"},
		"packages": map[string]any{"nginx": "1.22.1", "openssl": "3.0.11", "python3": "3.11.2"},
		"systemd":  map[string]any{"version": "252", "features": "+PAM +AUDIT +SELINUX"},
		"zester":   map[string]any{"version": "0.1.0", "partition": i % 64},
	}
	b, _ := json.Marshal(doc)
	return b
}

// Tree is a realistic settings tree: top.zy with 10 targets (globs,
// facts, compound, a list), 11 files, three secrets (sealed to pub),
// setting lookups, loops. Every peel gets common and users.
func Tree(pub string) (map[string]string, error) {
	var serr error
	seal := func(v string) string {
		tok, err := settings.Seal(pub, []byte(v))
		if err != nil {
			serr = err
		}
		return tok
	}
	t := map[string]string{
		"top.zy": `'*': [common, users]
'G@os_family:Debian': [debian]
'G@os_family:RedHat': [redhat]
'G@role:web': [web, web.nginx]
'G@role:db': [db]
'G@role:cache or G@role:lb': [edge]
'G@datacenter:dc1 and not G@role:db': [dc.dc1]
'peel0000*': [canary]
'L@peel00001,peel00002': [canary]
'G@role:worker': [worker]
`,
		"common.zy": `domain: example.com
ntp:
  servers: [0.pool.ntp.org, 1.pool.ntp.org]
packages: [vim, curl, htop]
resolver:
{{- range .facts.network.dns.nameservers }}
  - {{ . }}
{{- end }}
monitoring:
  token: {{ secret "` + seal("monitoring-token-123") + `" }}
  labels:
    dc: {{ .facts.datacenter }}
    role: {{ .facts.role | default "none" }}
`,
		"users.zy": `users:
{{- range $u := list "alice" "bob" "carol" "dave" }}
  {{ $u }}:
    shell: /bin/bash
    groups: [staff{{ if eq $u "alice" }}, sudo{{ end }}]
{{- end }}
`,
		"debian.zy":    "pkg_manager: apt\npackages: !append [apt-transport-https]\n",
		"redhat.zy":    "pkg_manager: dnf\npackages: !append [dnf-utils]\n",
		"web/init.zy":  "site: {{ .id }}.{{ setting \"domain\" }}\napp:\n  db_password: {{ secret \"" + seal("db-password-456") + "\" }}\n  workers: {{ mul .facts.num_cpus 2 }}\n",
		"web/nginx.zy": "nginx:\n  worker_processes: {{ .facts.num_cpus }}\n  server_name: {{ setting \"site\" }}\n  listen: [80, 443]\n",
		"db.zy":        "postgres:\n  version: 16\n  password: {{ secret \"" + seal("pg-superuser-789") + "\" }}\n  shared_buffers: {{ div .facts.mem_total 4 }}MB\n",
		"edge.zy":      "haproxy:\n  maxconn: 4096\n",
		"dc/dc1.zy":    "ntp: !replace\n  servers: [ntp.dc1.example.com]\n",
		"canary.zy":    "canary: true\n",
		"worker.zy":    "queue: {{ .facts.datacenter }}-jobs\n",
	}
	return t, serr
}
