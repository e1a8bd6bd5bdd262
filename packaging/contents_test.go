package main

import (
	"strings"
	"testing"
)

func TestDisableCron(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // the file after the header
		wantErr string
	}{
		{
			name: "job commented, variables and comments kept",
			in:   "# check\nSHELL=/bin/sh\nPATH=/usr/bin:/bin\n* * * * * root /usr/local/bin/arpcheck repair -q\n",
			want: "# check\nSHELL=/bin/sh\nPATH=/usr/bin:/bin\n#* * * * * root /usr/bin/arpcheck repair -q\n",
		},
		{
			name: "every job and @reboot",
			in:   "@reboot root /usr/local/bin/arpcheck verify\n*/5 * * * * root /usr/local/bin/arpcheck repair\n",
			want: "#@reboot root /usr/bin/arpcheck verify\n#*/5 * * * * root /usr/bin/arpcheck repair\n",
		},
		{
			name:    "no job",
			in:      "# /usr/local/bin/arpcheck\nSHELL=/bin/sh\n",
			wantErr: "no job line",
		},
		{
			name:    "another binary",
			in:      "* * * * * root /opt/arpcheck repair\n",
			wantErr: "does not run /usr/local/bin/arpcheck",
		},
	}
	for _, tt := range tests {
		got, err := disableCron(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v; want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !strings.HasPrefix(got, cronHeader) {
			t.Errorf("%s: no header:\n%s", tt.name, got)
			continue
		}
		if got = strings.TrimPrefix(got, cronHeader); got != tt.want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", tt.name, got, tt.want)
		}
	}
}
