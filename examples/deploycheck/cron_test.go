package deploycheck

import (
	"strings"
	"testing"
)

func TestParseCronD(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    []cronJob
		wantErr string // part of the error; empty: no error
	}{
		{name: "every minute", text: "* * * * * root /bin/true -q\n",
			want: []cronJob{{Line: 1, Time: "* * * * *", User: "root", Command: "/bin/true -q"}}},
		{name: "comments, settings, blank lines", text: "# x\n\nPATH=/bin\nMAILTO = ops\n*/5 1-3,7 * jan-mar mon-fri nobody a  b\n",
			want: []cronJob{{Line: 5, Time: "*/5 1-3,7 * jan-mar mon-fri", User: "nobody", Command: "a  b"}}},
		{name: "macro", text: "@hourly root x\n", want: []cronJob{{Line: 1, Time: "@hourly", User: "root", Command: "x"}}},
		{name: "no user (crontab syntax)", text: "* * * * * /usr/local/bin/arpcheck repair\n", wantErr: "not a user name"},
		{name: "four time fields", text: "* * * * root /bin/true\n", wantErr: "want 5 time fields"},
		{name: "minute 60", text: "60 * * * * root x\n", wantErr: "minute field"},
		{name: "day of week 8", text: "* * * * 8 root x\n", wantErr: "day of week field"},
		{name: "bad month name", text: "* * * foo * root x\n", wantErr: "month field"},
		{name: "backwards range", text: "5-1 * * * * root x\n", wantErr: "backwards"},
		{name: "step of 0", text: "*/0 * * * * root x\n", wantErr: "bad step"},
		{name: "unknown macro", text: "@often root x\n", wantErr: "unknown macro"},
		{name: "no final newline", text: "* * * * * root x", wantErr: "newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCronD(tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseCronD: error %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCronD: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("parseCronD = %+v; want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("job %d = %+v; want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
