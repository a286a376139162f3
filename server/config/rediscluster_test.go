package config

import (
	"slices"
	"strings"
	"testing"
)

func TestRedisClusterNodes(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want []string
	}{
		{nil, nil},
		{map[string]string{"REDIS_CLUSTER_NODES": "10.0.0.1:6379, 10.0.0.2:6379,"}, []string{"10.0.0.1:6379", "10.0.0.2:6379"}},
		{map[string]string{"REDIS_CLUSTER_NODES": "rediss://u:p@a.example:6380,rediss://u:p@b.example:6380/0"},
			[]string{"rediss://u:p@a.example:6380", "rediss://u:p@b.example:6380/0"}},
		{map[string]string{"REDIS_CLUSTER_NODES": "[::1]:7000,redis://h:7001"}, []string{"[::1]:7000", "redis://h:7001"}},
	} {
		c, err := FromLookup(lookup(tt.env))
		if err != nil || !slices.Equal(c.RedisClusterNodes, tt.want) {
			t.Errorf("%v: %q %v, want %q", tt.env, c.RedisClusterNodes, err, tt.want)
		}
	}
}

// Every bad seed list is refused by name, without showing a password.
func TestBadRedisClusterNodes(t *testing.T) {
	for _, env := range []map[string]string{
		{"REDIS_CLUSTER_NODES": "10.0.0.1"},
		{"REDIS_CLUSTER_NODES": "10.0.0.1:0"},
		{"REDIS_CLUSTER_NODES": ":6379"},
		{"REDIS_CLUSTER_NODES": "http://h:6379"},
		{"REDIS_CLUSTER_NODES": "redis://u:secret@h:6379/2"},
		{"REDIS_CLUSTER_NODES": "redis://u:secret@h:6379,rediss://u:secret@h2:6379"},
		{"REDIS_CLUSTER_NODES": "redis://u:secret@h:6379,redis://v:secret@h2:6379"},
		{"REDIS_CLUSTER_NODES": "h:6379", "REDIS_URL": "redis://u:secret@h:6379"},
	} {
		_, err := FromLookup(lookup(env))
		if err == nil || !strings.Contains(err.Error(), "REDIS_CLUSTER_NODES=") {
			t.Errorf("%v: error %v does not name REDIS_CLUSTER_NODES", env, err)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: the error shows the password: %v", env, err)
		}
	}
	// Reported with the others at once.
	_, err := FromLookup(lookup(map[string]string{"REDIS_CLUSTER_NODES": "nope", "PORT": "x"}))
	if err == nil || !strings.Contains(err.Error(), "REDIS_CLUSTER_NODES=") || !strings.Contains(err.Error(), "PORT=") {
		t.Errorf("not every bad variable reported: %v", err)
	}
}
